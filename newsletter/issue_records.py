"""Turn an `Issue` into the archive row the state store keeps, and back.

The archive holds every paper's data (not only its id) so the web archive page can be rebuilt
without the sources. Papers are written field by field from the dataclass, and read back keeping
only the fields `Paper` still has, so an archive written by an older version stays readable.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from newsletter.models import Issue, Paper, Section

log = logging.getLogger(__name__)

_PAPER_FIELDS = {f.name for f in dataclasses.fields(Paper)}
_TUPLE_FIELDS = {"authors", "categories", "keywords"}
# Issue fields kept in the `counts` JSON column: the numbers the archive list shows
_COUNT_FIELDS = ("paper_count", "email_count", "web_only_count")


def paper_to_dict(paper: Paper) -> dict[str, Any]:
    """Return a JSON-ready dict of a paper (datetimes as ISO 8601, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(paper):
        value = getattr(paper, f.name)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def paper_from_dict(data: Mapping[str, Any]) -> Paper:
    """Rebuild a paper from `paper_to_dict` output, ignoring fields `Paper` no longer has."""
    values = {k: v for k, v in data.items() if k in _PAPER_FIELDS}
    for name in _TUPLE_FIELDS & values.keys():
        values[name] = tuple(values[name] or ())
    if isinstance(values.get("published"), str):
        values["published"] = datetime.fromisoformat(values["published"])
    return Paper(**values)


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
                "papers": [paper_to_dict(p) for p in s.papers],
                "more_papers": [paper_to_dict(p) for p in s.more_papers],
            }
            for s in issue.sections
        ],
        "counts": {name: getattr(issue, name) for name in _COUNT_FIELDS},
        "web_url": issue.web_url,
    }


def issue_from_row(row: Mapping[str, Any]) -> Issue:
    """Rebuild the `Issue` of an `issues` row."""
    sections = tuple(
        Section(
            topic=s["topic"],
            papers=tuple(paper_from_dict(p) for p in s.get("papers", [])),
            more_papers=tuple(paper_from_dict(p) for p in s.get("more_papers", [])),
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
