"""Group papers by topic with the keyword rules, and build the week's issue from them."""

from newsletter.topics.engine import TopicMatcher, assign_all, compile_topics, explain, group
from newsletter.topics.issue import build_issue, default_now, issue_id_for

__all__ = [
    "TopicMatcher",
    "assign_all",
    "build_issue",
    "compile_topics",
    "default_now",
    "explain",
    "group",
    "issue_id_for",
]
