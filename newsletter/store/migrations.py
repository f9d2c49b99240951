"""The state store's schema history: an ordered list of migrations, applied at open.

A database records its version in `schema_version`. Opening it runs every migration it has not
seen, in order, inside the open's transaction, so an upgrade either completes or leaves the file as
it was. Each migration declares the tables it creates with its own `MetaData`, frozen as they were
at that version: later edits to `newsletter.store.state`'s tables must come as a new migration here,
never as a change to an old one (a database already at that version would not see it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

log = logging.getLogger(__name__)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone; it stores UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; pass an aware one")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


EMAIL = sa.String(320)  # RFC 5321's path limit; portable (PostgreSQL VARCHAR, SQLite TEXT)
ISSUE_ID = sa.String(32)


def _json() -> sa.JSON:
    # SQL NULL (not the JSON text 'null') for None, so `IS NULL` means "no value"
    return sa.JSON(none_as_null=True)


def _v1_initial(conn: sa.Connection) -> None:
    """Create subscribers, suppressions, the issue archive and the send ledger."""
    md = sa.MetaData()
    sa.Table(
        "subscribers",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", EMAIL, nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("topics", _json()),  # a list of topic names; NULL means every topic
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("confirmed_at", UTCDateTime),
        sa.Column("confirm_sent_at", UTCDateTime),
    )
    sa.Table(
        "suppressions",
        md,
        sa.Column("email", EMAIL, primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("detail", sa.Text),
    )
    sa.Table(
        "issues",
        md,
        sa.Column("id", ISSUE_ID, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("window_end", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("sections", _json(), nullable=False),  # topics with their papers' data
        sa.Column("counts", _json(), nullable=False),
        sa.Column("web_url", sa.Text, nullable=False),
        sa.Column("web_html", sa.Text, nullable=False),
    )
    sa.Table(
        "ledger",
        md,
        sa.Column("issue_id", ISSUE_ID, primary_key=True),
        sa.Column("email", EMAIL, primary_key=True),
        sa.Column("variant", sa.Text, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.Column("message_id", sa.Text),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Index("ix_ledger_issue_status", "issue_id", "status"),
    )
    md.create_all(conn)


def _v2_sent_papers(conn: sa.Connection) -> None:
    """Add `sent_papers` and fill it from the archived issues' sections."""
    md = sa.MetaData()
    sent = sa.Table(
        "sent_papers",
        md,
        sa.Column("paper_id", sa.String(200), primary_key=True),
        sa.Column("issue_id", ISSUE_ID, primary_key=True),
        sa.Index("ix_sent_papers_issue", "issue_id"),
    )
    md.create_all(conn)
    issues = sa.table("issues", sa.column("id"), sa.column("sections", _json()))
    rows = []
    for issue_id, sections in conn.execute(sa.select(issues.c.id, issues.c.sections)):
        ids = {
            paper["id"]
            for section in sections or []
            for key in ("papers", "more_papers")
            for paper in section.get(key, [])
        }
        rows += [{"paper_id": pid, "issue_id": issue_id} for pid in sorted(ids)]
    if rows:
        conn.execute(sent.insert(), rows)


def _v3_recipients_signups_mail_queue(conn: sa.Connection) -> None:
    """Add `recipients` (the opaque ids links carry), `signups` (each web sign-up kept apart
    until it is confirmed) and `mail_queue` (confirmation emails waiting to go out)."""
    md = sa.MetaData()
    sa.Table(
        "recipients",
        md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", EMAIL, nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    sa.Table(
        "signups",
        md,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("topics", _json()),  # as in `subscribers`: NULL means every topic
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Index("ix_signups_email", "email"),
        sa.Index("ix_signups_created_at", "created_at"),
    )
    sa.Table(
        "mail_queue",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),  # "confirm"
        sa.Column("email", EMAIL, nullable=False),
        sa.Column("ref", sa.String(32), nullable=False),  # the sign-up it confirms
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("due_at", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.Index("ix_mail_queue_due_at", "due_at"),
    )
    md.create_all(conn)


def _v4_ledger_names_and_leases(conn: sa.Connection) -> None:
    """Give ledger rows the recipient's name (a send streams its audience into the ledger and
    reads back what each message needs) and a lease (owner, expiry) for rows a sender claimed."""
    md = sa.MetaData()
    ledger = sa.Table(
        "ledger",
        md,
        sa.Column("name", sa.Text),
        sa.Column("lease_owner", sa.String(64)),  # the claiming sender (host, pid, run)
        sa.Column("lease_until", UTCDateTime),  # past it, another sender may take the row
    )
    # no index on the lease: a mark would be planned through it (scanning every row the sender
    # holds) instead of the primary key; renewing a lease reads the issue's pending rows instead
    for column in ledger.columns:
        kind = column.type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE ledger ADD COLUMN {column.name} {kind}"))


MIGRATIONS: list[Callable[[sa.Connection], None]] = [
    _v1_initial,
    _v2_sent_papers,
    _v3_recipients_signups_mail_queue,
    _v4_ledger_names_and_leases,
]
LATEST = len(MIGRATIONS)

_version_table = sa.Table(
    "schema_version", sa.MetaData(), sa.Column("version", sa.Integer, nullable=False)
)


def current_version(conn: sa.Connection) -> int:
    """Return the schema version a database is at (0 for an empty one)."""
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return int(conn.execute(sa.select(sa.func.max(_version_table.c.version))).scalar() or 0)


def upgrade(conn: sa.Connection, target: int | None = None) -> tuple[int, int]:
    """Apply the migrations a database lacks, in the caller's transaction; return (from, to).

    Raise `ValueError` when the database is newer than this program (the caller words it).
    """
    target = LATEST if target is None else target
    before = current_version(conn)
    if before > LATEST:
        raise ValueError(f"schema version {before} is newer than this program's {LATEST}")
    if before == 0:
        _version_table.create(conn)
        conn.execute(_version_table.insert().values(version=0))
    for version in range(before + 1, target + 1):
        migration = MIGRATIONS[version - 1]
        log.info("state: migrating to schema version %d (%s)", version, migration.__doc__)
        migration(conn)
        conn.execute(_version_table.update().values(version=version))
    return before, max(before, target)
