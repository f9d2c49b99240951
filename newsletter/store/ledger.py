"""The send ledger: one row per issue and recipient, worked through until none is pending.

`Store.ledger` holds one. A send writes its whole audience first (`enqueue`), then marks each
row as the server answers; a crash or a second run only sees the rows still pending. Each mark is
its own commit, made right after the server's reply and before the sending thread takes its next
message, so each thread has at most one message off the record at any time. `sent_marks` is
that mark's fast form for a whole send.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from newsletter.errors import StoreError
from newsletter.store.database import Database, db_message
from newsletter.store.schema import LEDGER_STATUSES, LedgerRow, check_value, email_key, ledger

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 1000

# The hot path of a send, built once: building the UPDATE anew for every message cost about half
# of the CPU time per message (measured with bench/send.py).
_MARK_SENT = (
    ledger.update()
    .where(
        ledger.c.issue_id == sa.bindparam("k_issue"),
        ledger.c.email == sa.bindparam("k_email"),
        ledger.c.status == "pending",  # a sent or failed row is final
    )
    .values(
        status="sent",
        message_id=sa.bindparam("k_mid"),
        last_error=None,
        updated_at=sa.bindparam("k_at"),
        attempts=ledger.c.attempts + 1,
    )
)


# `_MARK_SENT` as SQLite runs it, for `SentMarks`' own connection (the same row change).
_MARK_SENT_SQLITE = (
    "UPDATE ledger SET status = 'sent', message_id = ?, last_error = NULL, updated_at = ?, "
    "attempts = attempts + 1 WHERE issue_id = ? AND email = ? AND status = 'pending'"
)


class Ledger:
    """The send ledger of one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, issue_id: str, rows: Iterable[tuple[str, str]]) -> int:
        """Write the audience, (email, variant) pairs, as pending; return how many were new.

        Rows already in the ledger for this issue are left untouched, so a second run resumes.
        """
        now = self.db.clock()
        params = [
            {
                "issue_id": issue_id,
                "email": email_key(email),
                "variant": variant,
                "status": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            for email, variant in rows
        ]
        if not params:
            return 0
        count = sa.select(sa.func.count()).where(ledger.c.issue_id == issue_id)
        with self.db.write() as conn:
            before = conn.execute(count).scalar_one()
            conn.execute(self.db.insert_ignore(ledger), params)
            return int(conn.execute(count).scalar_one() - before)

    def pending_rows(
        self, issue_id: str, *, chunk: int = 1000, max_attempts: int | None = None
    ) -> Iterator[LedgerRow]:
        """Yield the rows still to send, in short reads of `chunk` rows (safe to mark meanwhile)."""
        where = [ledger.c.status == "pending"]
        if max_attempts is not None:
            where.append(ledger.c.attempts < max_attempts)
        return self._ledger_rows(issue_id, where, chunk)

    def rows(
        self, issue_id: str, status: str | None = None, *, chunk: int = 1000
    ) -> Iterator[LedgerRow]:
        """Yield an issue's ledger rows (of one status, if given) in address order."""
        if status is not None:
            check_value(status, LEDGER_STATUSES, "ledger status")
        where = [] if status is None else [ledger.c.status == status]
        return self._ledger_rows(issue_id, where, chunk)

    def _ledger_rows(self, issue_id: str, where: list[Any], chunk: int) -> Iterator[LedgerRow]:
        # keyset paging on the primary key: no read transaction stays open between chunks
        last = ""
        while True:
            query = (
                sa.select(ledger)
                .where(ledger.c.issue_id == issue_id, ledger.c.email > last, *where)
                .order_by(ledger.c.email)
                .limit(chunk)
            )
            with self.db.read() as conn:
                batch = [LedgerRow(**row._mapping) for row in conn.execute(query)]
            yield from batch
            if len(batch) < chunk:
                return
            last = batch[-1].email

    def mark_sent(self, issue_id: str, email: str, message_id: str | None) -> None:
        """Record that the server accepted the message (committed before the next send)."""
        params = {"k_issue": issue_id, "k_email": email_key(email)}
        with self.db.write() as conn:
            changed = conn.execute(
                _MARK_SENT, {**params, "k_mid": message_id, "k_at": self.db.clock()}
            ).rowcount
        if changed == 0:
            log.warning("ledger %s: %s is not pending; left unchanged", issue_id, email)

    def sent_marks(self, issue_id: str) -> SentMarks:
        """Return a `mark_sent` for one issue's send, fast on SQLite; close it when done."""
        return SentMarks(self, issue_id)

    def mark_failed(self, issue_id: str, email: str, error: str, *, permanent: bool) -> None:
        """Record a failed try: a permanent one ends the row, a temporary one leaves it pending."""
        status = "failed" if permanent else "pending"
        self._mark(issue_id, email, status=status, last_error=error[:_MAX_ERROR_CHARS])

    def mark_skipped(self, issue_id: str, email: str, reason: str) -> None:
        """Take a row out of the send without trying (e.g. suppressed since it was enqueued)."""
        self._mark(issue_id, email, status="skipped", last_error=reason, attempt=False)

    def mark_attempt(self, issue_id: str, email: str) -> int:
        """Count one more try of a row without changing its status; return the new count."""
        self._mark(issue_id, email)
        with self.db.read() as conn:
            query = sa.select(ledger.c.attempts).where(
                ledger.c.issue_id == issue_id, ledger.c.email == email_key(email)
            )
            return int(conn.execute(query).scalar_one())

    def _mark(self, issue_id: str, email: str, *, attempt: bool = True, **values: Any) -> None:
        email = email_key(email)
        values["updated_at"] = self.db.clock()
        if attempt:
            values["attempts"] = ledger.c.attempts + 1
        with self.db.write() as conn:
            result = conn.execute(
                ledger.update()
                .where(
                    ledger.c.issue_id == issue_id,
                    ledger.c.email == email,
                    ledger.c.status == "pending",  # a sent or failed row is final
                )
                .values(values)
            )
            changed = result.rowcount
        if changed == 0:
            log.warning("ledger %s: %s is not pending; left unchanged", issue_id, email)

    def counts(self, issue_id: str) -> dict[str, int]:
        """Rows per status for one issue (every status present, zero if none)."""
        query = (
            sa.select(ledger.c.status, sa.func.count())
            .where(ledger.c.issue_id == issue_id)
            .group_by(ledger.c.status)
        )
        counts = dict.fromkeys(LEDGER_STATUSES, 0)
        with self.db.read() as conn:
            for status, n in conn.execute(query):
                counts[status] = n
        return counts


class SentMarks:
    """Mark one issue's rows sent, each in its own commit, as `mark_sent` does, but faster.

    The hot path of a send. On a SQLite file (the stdlib driver) it keeps one DBAPI connection
    and one prepared UPDATE for the whole send: through SQLAlchemy a mark took 93 us, of which
    the pool checkout, the BEGIN event and the statement's parameter work were 2/3; here it takes
    27 us, and the connection's page cache stays warm. Elsewhere it calls `mark_sent`. Threads
    may share one; each mark has returned only once its commit has.
    """

    def __init__(self, owner: Ledger, issue_id: str) -> None:
        self._ledger, self._issue_id = owner, issue_id
        self._lock = threading.Lock()
        self._raw: Any = None
        engine = owner.db.engine
        url = engine.url
        if (
            url.get_backend_name() == "sqlite"
            and url.get_driver_name() == "pysqlite"
            and (url.database not in (None, "", ":memory:"))
        ):
            # The stored form of a timestamp, from the column's own type (UTC, SQLite's format).
            impl = ledger.c.updated_at.type.dialect_impl(engine.dialect)
            stamp = impl.bind_processor(engine.dialect)
            assert stamp is not None  # UTCDateTime always converts
            self._stamp = stamp
            try:
                self._raw = engine.raw_connection()  # tuned like every pooled connection
            except sa.exc.SQLAlchemyError as e:
                raise StoreError(f"{owner.db.label}: {db_message(e)}") from e
            self._db: sqlite3.Connection = self._raw.driver_connection

    def mark(self, email: str, message_id: str | None) -> None:
        """Record that the server accepted the message (committed when this returns)."""
        if self._raw is None:
            self._ledger.mark_sent(self._issue_id, email, message_id)
            return
        at = self._stamp(self._ledger.db.clock())
        params = (message_id, at, self._issue_id, email_key(email))
        db = self._db
        with self._lock:
            try:
                # IMMEDIATE: wait for the write lock up front (see database.tune_sqlite)
                db.execute("BEGIN IMMEDIATE")
                try:
                    changed = db.execute(_MARK_SENT_SQLITE, params).rowcount
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.rollback()
                    raise
            except sqlite3.Error as e:
                raise StoreError(f"{self._ledger.db.label}: {db_message(e)}") from e
        if changed == 0:
            log.warning("ledger %s: %s is not pending; left unchanged", self._issue_id, email)

    def close(self) -> None:
        """Give the connection back to the store's pool."""
        with self._lock:
            raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()

    def __enter__(self) -> SentMarks:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
