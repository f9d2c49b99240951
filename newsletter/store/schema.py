"""The state store's current tables and the records its queries return.

The tables here must equal what `newsletter.store.migrations` builds (a test compares them); a
change to them is a new migration first.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa

from newsletter.models import Issue, Subscriber
from newsletter.store.migrations import EMAIL, ISSUE_ID, UTCDateTime

SUBSCRIBER_STATUSES = ("pending", "confirmed")
SUPPRESSION_REASONS = ("unsubscribed", "bounced", "complained", "removed")
LEDGER_STATUSES = ("pending", "sent", "failed", "skipped")
MAX_ERROR_CHARS = 1000  # of a ledger row's last error


# The current schema, as the migrations leave it (tests compare the two).
metadata = sa.MetaData()
subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", EMAIL, nullable=False, unique=True),
    sa.Column("name", sa.Text),
    sa.Column("topics", sa.JSON(none_as_null=True)),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("confirm_sent_at", UTCDateTime),
)
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email", EMAIL, primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("detail", sa.Text),
)
issues = sa.Table(
    "issues",
    metadata,
    sa.Column("id", ISSUE_ID, primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sections", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("counts", sa.JSON(none_as_null=True), nullable=False),
    sa.Column("web_url", sa.Text, nullable=False),
    sa.Column("web_html", sa.Text, nullable=False),
)
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("issue_id", ISSUE_ID, primary_key=True),
    sa.Column("email", EMAIL, primary_key=True),
    sa.Column("variant", sa.Text, nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("name", sa.Text),  # the recipient's name, for the To: header
    sa.Column("lease_owner", sa.String(64)),  # the sender that claimed the row (PostgreSQL)
    sa.Column("lease_until", UTCDateTime),  # its claim lapses then, unless renewed
)
sent_papers = sa.Table(
    "sent_papers",
    metadata,
    sa.Column("paper_id", sa.String(200), primary_key=True),
    sa.Column("issue_id", ISSUE_ID, primary_key=True),
)
recipients = sa.Table(
    "recipients",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("email", EMAIL, nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
signups = sa.Table(
    "signups",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("email", EMAIL, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("topics", sa.JSON(none_as_null=True)),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
mail_queue = sa.Table(
    "mail_queue",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("email", EMAIL, nullable=False),
    sa.Column("ref", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
)


def topics_value(topics: frozenset[str] | None) -> list[str] | None:
    """A topic choice as its column holds it: sorted names, or null for every topic."""
    return None if topics is None else sorted(topics)


def subscriber_of(row: Any, source: Literal["web"] | None = None) -> Subscriber:
    """The subscriber a `subscribers` (or `signups`) row holds (`source` for a table without)."""
    topics = row.topics
    return Subscriber(
        email=row.email,
        name=row.name,
        topics=None if topics is None else frozenset(topics),
        format=row.format,
        source=source if source is not None else row.source,
    )


@dataclass(frozen=True, slots=True)
class StoredSubscriber:
    """A web or imported subscriber with its confirmation state."""

    subscriber: Subscriber
    status: str  # pending | confirmed
    created_at: datetime
    confirmed_at: datetime | None
    confirm_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ArchivedIssue:
    issue: Issue
    web_html: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class IssueSummary:
    """One archived issue without its papers: for the archive page and `newsletter issues`."""

    id: str
    title: str
    start: datetime
    end: datetime
    created_at: datetime
    counts: dict[str, int]
    ledger: dict[str, int]  # rows per ledger status (all statuses present)
    to_retry: int = 0  # of the pending rows, those tried and failed for now (a rerun retries)


@dataclass(frozen=True, slots=True)
class Suppression:
    """Why mail to an address stopped: the reason, when, and what was said (a server's reply)."""

    email: str
    reason: str  # unsubscribed | bounced | complained | removed
    at: datetime
    detail: str | None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    issue_id: str
    email: str
    variant: str
    status: str
    attempts: int
    last_error: str | None
    message_id: str | None
    updated_at: datetime
    name: str | None = None
    lease_owner: str | None = None
    lease_until: datetime | None = None


def check_value(value: str, allowed: tuple[str, ...], what: str) -> None:
    """Reject a status or reason the schema does not know (a programming error, not a user's)."""
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def email_key(email: str) -> str:
    """The form every table stores an address in (see `newsletter.audience.subscribers`)."""
    return email.strip().lower()


# The statement that gives an address its recipient id unless it has one (another sender may
# have made it meanwhile: theirs is kept); the ledger runs it for a chunk of the audience, a claim
# for the rows it took, each in its own transaction. `%s` placeholders, as `Database.sql` takes.
ADD_ID = "INSERT INTO recipients (id, email, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"


def new_id() -> str:
    """A random id for a recipient or a sign-up (96 bits, URL-safe, never holding an "@")."""
    return secrets.token_urlsafe(12)


def new_ids(n: int) -> list[str]:
    """`n` ids as `new_id` makes them, from one read of the system's random source."""
    raw = secrets.token_bytes(12 * n)
    return [base64.urlsafe_b64encode(raw[i : i + 12]).decode() for i in range(0, 12 * n, 12)]
