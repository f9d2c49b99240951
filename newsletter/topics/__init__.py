"""Group papers by topic with the keyword rules, and build the week's issue from them; measure
the rules against labelled papers and suggest keywords for them."""

from newsletter.topics.engine import TopicMatcher, assign_all, compile_topics
from newsletter.topics.evaluation import Evaluation, evaluate
from newsletter.topics.explanation import explain
from newsletter.topics.issue import build_issue, default_now, issue_id_for
from newsletter.topics.suggestions import Suggestion, suggest

__all__ = [
    "Evaluation",
    "Suggestion",
    "TopicMatcher",
    "assign_all",
    "build_issue",
    "compile_topics",
    "default_now",
    "evaluate",
    "explain",
    "issue_id_for",
    "suggest",
]
