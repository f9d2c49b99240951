"""The issue archive: each issue built, as the row the state store keeps, and the papers sent.

The archive holds every paper's data (not only its id) so the web archive page can be rebuilt
without the sources. Papers are written field by field from the dataclass, and read back keeping
only the fields `Paper` still has, so an archive written by an older version stays readable.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from newsletter.models import Issue, Paper, Section
from newsletter.store.database import Database
from newsletter.store.schema import (
    LEDGER_STATUSES,
    ArchivedIssue,
    IssueSummary,
    issues,
    ledger,
    sent_papers,
)

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


class Archive:
    """The issue archive of one state database, and the papers its issues carried."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save_issue(self, issue: Issue, web_html: str = "", *, record_papers: bool = False) -> None:
        """Archive an issue (replacing an earlier save of the same id, keeping its created_at).

        `record_papers` also records its papers as sent, in the same transaction, so that the
        archive and "papers sent before" never disagree after a crash.
        """
        values = issue_to_row(issue)
        values["web_html"] = web_html
        with self.db.write() as conn:
            updated = conn.execute(issues.update().where(issues.c.id == issue.id).values(values))
            if updated.rowcount == 0:
                conn.execute(issues.insert().values(created_at=self.db.clock(), **values))
            if record_papers:
                self._record_sent_papers(conn, issue.id, (p.id for p in issue.papers))

    def get_issue(self, issue_id: str) -> ArchivedIssue | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(issues).where(issues.c.id == issue_id)).first()
        if row is None:
            return None
        return ArchivedIssue(issue_from_row(dict(row._mapping)), row.web_html, row.created_at)

    def list_issues(self) -> list[IssueSummary]:
        """Every archived issue, newest first, with its ledger counts per status."""
        cols = [issues.c[name] for name in ("id", "title", "window_start", "window_end")]
        query = sa.select(*cols, issues.c.created_at, issues.c.counts).order_by(
            issues.c.window_end.desc(), issues.c.id.desc()
        )
        per_status = sa.select(ledger.c.issue_id, ledger.c.status, sa.func.count()).group_by(
            ledger.c.issue_id, ledger.c.status
        )
        retry = (
            sa.select(ledger.c.issue_id, sa.func.count())
            .where(ledger.c.status == "pending", ledger.c.last_error.is_not(None))
            .group_by(ledger.c.issue_id)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).all()
            counts: dict[str, dict[str, int]] = {}
            for issue_id, status, n in conn.execute(per_status):
                counts.setdefault(issue_id, dict.fromkeys(LEDGER_STATUSES, 0))[status] = n
            to_retry = {issue_id: int(n) for issue_id, n in conn.execute(retry)}
        return [
            IssueSummary(
                r.id,
                r.title,
                r.window_start,
                r.window_end,
                r.created_at,
                dict(r.counts),
                counts.get(r.id, dict.fromkeys(LEDGER_STATUSES, 0)),
                to_retry.get(r.id, 0),
            )
            for r in rows
        ]

    def archived_papers(self, *, exclude_issue: str | None = None) -> list[Paper]:
        """Every paper of the archived issues (the background keyword weights are learnt from)."""
        query = sa.select(issues.c.id, issues.c.sections).order_by(issues.c.window_end)
        seen: dict[str, Paper] = {}
        with self.db.read() as conn:
            for issue_id, sections in conn.execute(query):
                if issue_id == exclude_issue:
                    continue
                for section in sections or ():
                    for item in [*section.get("papers", ()), *section.get("more_papers", ())]:
                        paper = Paper.from_dict(item)
                        seen.setdefault(paper.id, paper)
        return list(seen.values())

    def sent_paper_ids(self, *, exclude_issue: str | None = None) -> set[str]:
        """Ids of papers earlier issues carried (leave out the issue being rebuilt)."""
        query = sa.select(sent_papers.c.paper_id).distinct()
        if exclude_issue is not None:
            query = query.where(sent_papers.c.issue_id != exclude_issue)
        with self.db.read() as conn:
            return set(conn.execute(query).scalars())

    def record_sent_papers(self, issue_id: str, paper_ids: Iterable[str]) -> None:
        with self.db.write() as conn:
            self._record_sent_papers(conn, issue_id, paper_ids)

    def _record_sent_papers(
        self, conn: sa.Connection, issue_id: str, paper_ids: Iterable[str]
    ) -> None:
        rows = [{"paper_id": pid, "issue_id": issue_id} for pid in dict.fromkeys(paper_ids)]
        if rows:
            conn.execute(self.db.insert_ignore(sent_papers), rows)
