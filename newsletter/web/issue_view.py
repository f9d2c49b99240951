"""The web version of an issue and its archive entry, shown the way the email shows them.

The issue page links every paper as the email does (title to the abstract page, else the PDF,
else an arXiv title search; the same labelled links), uses the same summaries and the same topic
anchors the email's chips and "+N more" links point at, and states the same date range.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from newsletter.render.context import date_range, paper_dates, paper_view, plural, topic_anchors
from newsletter.render.contribution import summarize

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.models import Issue
    from newsletter.store.schema import IssueSummary

MAX_AUTHORS_WEB = 8  # the page has room for more names than the email's three


def issue_dates(issue: Issue, tz: str) -> str:
    """The issue's date range from its papers' dates, as the email's header says it."""
    first, last = paper_dates(issue)
    return date_range(first, last, tz)


def issue_page_view(issue: Issue, config: Config) -> dict[str, Any]:
    """What `issue.html` shows: every paper of every section, linked as in the email."""
    anchors = topic_anchors(issue.sections)
    in_email = {p.id for s in issue.sections for p in s.papers}
    sections = []
    for section in issue.sections:
        papers = []
        for paper in section.all_papers:
            view = paper_view(paper)
            authors = ", ".join(paper.authors[:MAX_AUTHORS_WEB])
            if len(paper.authors) > MAX_AUTHORS_WEB:
                authors += f" and {len(paper.authors) - MAX_AUTHORS_WEB} more"
            papers.append(
                {
                    "title": view.title,
                    "url": view.url,
                    "authors": authors,
                    "upvotes": paper.upvotes or 0,
                    "summary": summarize(paper, config.summary_chars),
                    "abstract": paper.abstract,
                    "links": view.links,
                    "web_only": paper.id not in in_email,
                }
            )
        sections.append(
            {
                "topic": section.topic,
                "anchor": anchors[section.topic],
                "total": section.total,
                "papers": papers,
            }
        )
    return {
        "dates": issue_dates(issue, config.timezone),
        "papers": plural(issue.paper_count, "paper"),
        "sections": sections,
    }


def archive_entries(items: Sequence[IssueSummary], tz: str) -> list[dict[str, Any]]:
    """The archive's lines: each links with its dates and paper count ("28 Apr 2026 · 83
    papers"), a text no other line has (the issue id is added where two would read the same)."""
    entries = []
    for item in items:
        count = int(item.counts.get("paper_count", 0))
        text = f"{date_range(item.start, item.end, tz)} · {plural(count, 'paper')}"
        entries.append({"id": item.id, "title": item.title, "text": text})
    seen = Counter(e["text"] for e in entries)
    for entry in entries:
        if seen[entry["text"]] > 1:
            entry["text"] += f" ({entry['id']})"
    return entries
