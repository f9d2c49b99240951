"""The orchestrator: sources → papers → issue → rendered email. Preview and `run` share it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.models import Issue, Paper, RenderedEmail

log = logging.getLogger(__name__)


def gather_papers(config: Config, papers: Sequence[str] | None) -> list[Paper]:
    """Read `--papers` sources when given, else the sources named in the config."""
    from newsletter.sources import load_papers, read_sources

    if papers:
        return read_sources(papers)
    return load_papers(config.source_specs, window_days=config.window_days)


def build_current_issue(
    config: Config,
    papers: Sequence[str] | None = None,
    *,
    issue_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Issue, RenderedEmail]:
    """Build and render this week's issue (everything given with `--papers` goes in)."""
    from newsletter.issue import build_issue
    from newsletter.render import render_issue

    found = gather_papers(config, papers)
    issue = build_issue(found, config, now=now, issue_id=issue_id, use_window=not papers)
    rendered = render_issue(issue, config)
    log.info("issue %s: %d papers, %d sections", issue.id, issue.paper_count, len(issue.sections))
    return issue, rendered
