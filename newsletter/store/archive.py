"""Turn an `Issue` into the archive row the state store keeps, and back.

The archive holds every paper's data (not only its id) so the web archive page can be rebuilt
without the sources. Papers are written field by field from the dataclass, and read back keeping
only the fields `Paper` still has, so an archive written by an older version stays readable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from newsletter.models import Issue, Paper, Section

log = logging.getLogger(__name__)

# Issue fields kept in the `counts` JSON column: the numbers the archive list shows
_COUNT_FIELDS = ("paper_count", "email_count", "web_only_count")


def issue_to_row(issue: Issue) -> dict[str, Any]:
    """Return the `issues` table values for an issue (all but `created_at` and `web_html`)."""
    return {
        "id": issue.id,
        "title": issue.title,
        "window_start": issue.start,
        "window_end": issue.end,
        "sections": [
            {
                "topic": s.topic,
                "papers": [p.to_dict() for p in s.papers],
                "more_papers": [p.to_dict() for p in s.more_papers],
                "scores": list(s.scores),
            }
            for s in issue.sections
        ],
        "counts": {name: getattr(issue, name) for name in _COUNT_FIELDS},
        "web_url": issue.web_url,
    }


def issue_from_row(row: Mapping[Any, Any]) -> Issue:
    """Rebuild the `Issue` of an `issues` row."""
    sections = tuple(
        Section(
            topic=s["topic"],
            papers=tuple(Paper.from_dict(p) for p in s.get("papers", [])),
            more_papers=tuple(Paper.from_dict(p) for p in s.get("more_papers", [])),
            scores=tuple(float(x) for x in s.get("scores", [])),
        )
        for s in row["sections"]
    )
    counts = row["counts"] or {}
    return Issue(
        id=row["id"],
        title=row["title"],
        start=_aware(row["window_start"]),
        end=_aware(row["window_end"]),
        sections=sections,
        web_url=row["web_url"],
        **{name: int(counts.get(name, 0)) for name in _COUNT_FIELDS},
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
