"""The state store: subscriptions, suppressions, the send ledger and the issue archive.

Beside them: `recipients` (the opaque ids in links), `signups` (sign-up requests waiting for
confirmation) and `mail_queue` (the confirmation emails the web side has still to send).

SQLAlchemy Core over one SQLite file by default (WAL, `synchronous=NORMAL`, a busy timeout), or
a PostgreSQL URL. The schema comes from `newsletter.store.migrations`, applied when the store opens.

Durability of the ledger: every mark of a sent message (`store/marks.py`) is committed before
its thread takes the next message, so a message the SMTP server accepted is recorded before the
next one goes out, and a crash re-sends at most the messages that were in flight. With WAL and
`synchronous=NORMAL` a commit survives the process dying (it is in the WAL file) but not a power
cut or kernel crash, which may lose the last commits since a checkpoint; `bench/send.py` measures
the rate this allows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from newsletter.errors import StoreError
from newsletter.models import Subscriber
from newsletter.store import migrations
from newsletter.store.archive import Archive
from newsletter.store.claims import Claims, claims_for
from newsletter.store.database import (
    Database,
    state_folder,
    state_url,
    tune_sqlite,
    url_and_label,
)
from newsletter.store.ledger import Ledger
from newsletter.store.mail_queue import MailQueue
from newsletter.store.recipients import Recipients
from newsletter.store.roster import Roster
from newsletter.store.schema import (
    SUBSCRIBER_STATUSES,
    SUPPRESSION_REASONS,
    ArchivedIssue,
    IssueSummary,
    LedgerRow,
    StoredSubscriber,
    Suppression,
    check_value,
    email_key,
    subscriber_of,
    subscribers,
    suppressions,
    topics_value,
)
from newsletter.store.signups import Signups

if TYPE_CHECKING:
    from newsletter.config.stages import StateSettings

log = logging.getLogger(__name__)

__all__ = [
    "ArchivedIssue",
    "IssueSummary",
    "LedgerRow",
    "Store",
    "StoreError",
    "StoredSubscriber",
    "Suppression",
    "state_url",
]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Store:
    """The state database. Open with `Store.open(url_or_path)`; use as a context manager."""

    def __init__(self, engine: sa.Engine, label: str, clock: Callable[[], datetime]) -> None:
        self.db = Database(engine, label, clock)
        self.archive = Archive(self.db)  # the issues built, and the papers they carried
        self.ledger = Ledger(self.db)  # one row per issue and recipient
        self.recipients = Recipients(self.db)  # the opaque id each address's links carry
        self.signups = Signups(self.db)  # web sign-ups waiting for their confirmation
        self.mail_queue = MailQueue(self.db)  # confirmation emails waiting to go out
        self.roster = Roster(self.db)  # confirmed subscribers and suppressions, read in chunks

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    def claims(self, issue_id: str, *, lease_seconds: float = 60.0) -> Claims:
        """One sender's share of an issue's pending rows (see `newsletter.store.claims`)."""
        return claims_for(self.db, issue_id, lease_seconds)

    @property
    def label(self) -> str:
        """How messages name the database (a path, or the URL without its password)."""
        return self.db.label

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.db.clock

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, target: str | Path | sa.URL, *, clock: Callable[[], datetime] = _utcnow) -> Store:
        """Open (creating the file if needed) and migrate the state database at a path or URL.

        A SQLite file's folder must exist: `from_settings` makes the default state's folder only.
        """
        url, label = url_and_label(target)
        backend = url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise StoreError(f"{label}: {backend} is not supported; use SQLite or PostgreSQL")
        if backend == "sqlite" and url.database and url.database != ":memory:":
            folder = Path(url.database).parent
            if not folder.is_dir():
                raise StoreError(f"{label}: no such folder {folder}; create it first")
        # a web process keeps connections for hours: test one before use on a server database
        options = {"pool_pre_ping": True} if backend == "postgresql" else {}
        try:
            engine = sa.create_engine(url, **options)
        except (sa.exc.ArgumentError, ImportError) as e:
            raise StoreError(f"{label}: cannot use this database URL ({e})") from e
        if backend == "sqlite":
            tune_sqlite(engine)
        store = cls(engine, label, clock)
        try:
            with store.db.write() as conn:
                if backend == "postgresql":
                    # two processes opening a fresh database must not both migrate it
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(74620571)"))
                try:
                    before, after = migrations.upgrade(conn)
                except ValueError as e:
                    raise StoreError(f"{label}: {e}; upgrade newsletter") from e
        except BaseException:
            engine.dispose()
            raise
        if before != after:
            log.info("%s: schema upgraded from version %d to %d", label, before, after)
        return store

    @classmethod
    def from_settings(cls, settings: StateSettings) -> Store:
        """Open the store named by `state:` in the config."""
        state_folder(settings)
        return cls.open(state_url(settings))

    @classmethod
    def if_exists(cls, settings: StateSettings) -> Store | None:
        """The store named in the config if it exists yet (a look, a preview, must not make it);
        a database URL is taken to exist."""
        if "://" not in settings.state and not settings.resolve(settings.state).exists():
            return None
        return cls.from_settings(settings)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.label!r})"

    @property
    def schema_version(self) -> int:
        with self.db.read() as conn:
            return migrations.current_version(conn)

    # -- subscribers --------------------------------------------------------------------------

    def add_subscriber(self, subscriber: Subscriber, *, status: str = "pending") -> bool:
        """Add or update a web/cli subscriber; return True if the address was new.

        An existing row gets the new name, topics and format; its status only moves forward
        (pending to confirmed), never back.
        """
        check_value(status, SUBSCRIBER_STATUSES, "subscriber status")
        now = self.db.clock()
        values = {
            "name": subscriber.name,
            "topics": topics_value(subscriber.topics),
            "format": subscriber.format,
        }
        email = email_key(subscriber.email)
        with self.db.write() as conn:
            row = conn.execute(
                sa.select(subscribers.c.status).where(subscribers.c.email == email)
            ).first()
            if row is None:
                conn.execute(
                    subscribers.insert().values(
                        email=email,
                        source=subscriber.source,
                        status=status,
                        created_at=now,
                        confirmed_at=now if status == "confirmed" else None,
                        **values,
                    )
                )
                return True
            changes: dict[str, object] = dict(values)
            if status == "confirmed" and row.status != "confirmed":
                changes.update(status="confirmed", confirmed_at=now)
            conn.execute(subscribers.update().where(subscribers.c.email == email).values(changes))
            return False

    def add_subscribers(self, subs: Iterable[Subscriber], *, status: str = "confirmed") -> int:
        """Insert many subscribers in one transaction, leaving existing addresses as they are."""
        check_value(status, SUBSCRIBER_STATUSES, "subscriber status")
        now = self.db.clock()
        rows = [
            {
                "email": email_key(s.email),
                "name": s.name,
                "topics": topics_value(s.topics),
                "format": s.format,
                "source": s.source,
                "status": status,
                "created_at": now,
                "confirmed_at": now if status == "confirmed" else None,
                "confirm_sent_at": None,
            }
            for s in subs
        ]
        if not rows:
            return 0
        # the rows the insert returns are the new ones: nothing is counted before or after
        insert = self.db.insert_ignore(subscribers).returning(subscribers.c.id)
        with self.db.write() as conn:
            return len(conn.execute(insert, rows).all())

    def confirm_subscriber(self, email: str) -> bool:
        """Confirm a pending subscription; return False if there was none pending."""
        email = email_key(email)
        with self.db.write() as conn:
            result = conn.execute(
                subscribers.update()
                .where(subscribers.c.email == email, subscribers.c.status == "pending")
                .values(status="confirmed", confirmed_at=self.db.clock())
            )
            return result.rowcount == 1

    def get_subscriber(self, email: str) -> StoredSubscriber | None:
        email = email_key(email)
        with self.db.read() as conn:
            row = conn.execute(sa.select(subscribers).where(subscribers.c.email == email)).first()
        return None if row is None else _stored(row)

    def stored_subscribers(self) -> list[StoredSubscriber]:
        """Every web/cli subscriber, pending or confirmed, oldest first."""
        with self.db.read() as conn:
            rows = conn.execute(sa.select(subscribers).order_by(subscribers.c.id))
            return [_stored(row) for row in rows]

    def confirmed_subscribers(self) -> list[Subscriber]:
        """Every confirmed web/cli subscriber, oldest first."""
        query = (
            sa.select(subscribers)
            .where(subscribers.c.status == "confirmed")
            .order_by(subscribers.c.id)
        )
        with self.db.read() as conn:
            return [subscriber_of(row) for row in conn.execute(query)]

    # -- suppressions -------------------------------------------------------------------------

    def suppress(self, email: str, reason: str, detail: str | None = None) -> None:
        """Stop all mail to an address; a later reason replaces an earlier one."""
        email = email_key(email)
        check_value(reason, SUPPRESSION_REASONS, "suppression reason")
        values = {"reason": reason, "at": self.db.clock(), "detail": detail}
        with self.db.write() as conn:
            updated = conn.execute(
                suppressions.update().where(suppressions.c.email == email).values(values)
            )
            if updated.rowcount == 0:
                conn.execute(suppressions.insert().values(email=email, **values))
        log.info("suppressed %s (%s)", email, reason)

    def is_suppressed(self, email: str) -> bool:
        email = email_key(email)
        with self.db.read() as conn:
            query = sa.select(suppressions.c.email).where(suppressions.c.email == email)
            return conn.execute(query).first() is not None

    def suppressed_set(self) -> set[str]:
        with self.db.read() as conn:
            return set(conn.execute(sa.select(suppressions.c.email)).scalars())

    def suppressions(self) -> dict[str, Suppression]:
        """Every suppression by address: its reason, when, and the reply or note behind it."""
        query = sa.select(suppressions).order_by(suppressions.c.email)
        with self.db.read() as conn:
            return {row.email: Suppression(**row._mapping) for row in conn.execute(query)}

    def lift_bounces(self, emails: Iterable[str]) -> int:
        """Lift the bounce suppressions (no other reason) of `emails` at once; return how many."""
        keys = sorted({email_key(e) for e in emails})
        bounced = suppressions.c.email.in_(keys) & (suppressions.c.reason == "bounced")
        with self.db.write() as conn:
            lifted = int(conn.execute(suppressions.delete().where(bounced)).rowcount)
        log.info("lifted %d bounce suppression(s)", lifted)
        return lifted

    def clear_suppression(self, email: str) -> bool:
        """Lift a suppression (someone subscribed again, explicitly); return True if one was."""
        email = email_key(email)
        with self.db.write() as conn:
            result = conn.execute(suppressions.delete().where(suppressions.c.email == email))
            return result.rowcount > 0


def _stored(row: Any) -> StoredSubscriber:
    return StoredSubscriber(
        subscriber_of(row), row.status, row.created_at, row.confirmed_at, row.confirm_sent_at
    )
