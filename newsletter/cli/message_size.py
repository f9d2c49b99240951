"""The size of the largest message a send would make, to compare with the relay's SIZE limit.

The largest variant is the one with every topic in HTML: any other selection carries a subset
of its sections, and a text-only message has no HTML part. It is rendered and serialised as a
send would (same templates, budget and headers) from the latest archived issue, or, before the
first issue, from the bundled sample week.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from newsletter.delivery.message import build_template
from newsletter.render import render_issue
from newsletter.sources import read_sources
from newsletter.topics import build_issue

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.models import Issue
    from newsletter.store import Store

# Room for what each subscriber's copy adds to the variant: the To, Message-ID and
# List-Unsubscribe headers, four personal links in the body and a DKIM-Signature header.
PERSONAL_BYTES = 4096


def largest_message(config: Config, store: Store | None) -> tuple[int, str]:
    """Return (bytes, what it was built from) for the all-topics HTML message."""
    issue, what = _latest_issue(config, store)
    rendered = render_issue(issue, config.render_settings())
    template = build_template(rendered, config.mail_settings(), issue.id, fmt="html")
    return template.size + PERSONAL_BYTES, what


def _latest_issue(config: Config, store: Store | None) -> tuple[Issue, str]:
    if store is not None:
        for summary in store.archive.list_issues():
            archived = store.archive.get_issue(summary.id)
            if archived is not None:
                return archived.issue, f"issue {summary.id}"
    papers = read_sources(["sample"])
    return build_issue(papers, config.issue_settings(), use_window=False), "the sample week"
