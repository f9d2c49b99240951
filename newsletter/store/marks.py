"""The marks one sender makes: each one statement, committed before its connection sends again.

On PostgreSQL each sending thread keeps a connection of its own, in autocommit, and a mark is
one round trip (no BEGIN or COMMIT, no pool check) that changes the row only while it is still
this sender's. On SQLite the threads share one connection through a group commit: marks made at
the same moment share one transaction instead of queueing for the write lock one by one.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from newsletter.errors import StoreError

if TYPE_CHECKING:
    from newsletter.store.claims import Claims
    from newsletter.store.database import Database

log = logging.getLogger(__name__)

_SET_DONE = "lease_owner = NULL, lease_until = NULL"


class Marks:
    """The marks of one sender: each one statement, committed when the call returns."""

    def __init__(self, claims: Claims, *, max_error: int) -> None:
        self._claims = claims
        self._max_error = max_error  # characters of an error kept in the row
        db = claims.db
        self._issue = claims.issue_id
        self._stamp = db.stamp
        self._clock = db.clock
        owner = " AND lease_owner = %s" if claims.db.dialect == "postgresql" else ""
        where = f" WHERE issue_id = %s AND email = %s AND status = 'pending'{owner}"

        def sql(changes: str) -> str:
            return db.sql(f"UPDATE ledger SET {changes}, updated_at = %s{where}")

        self._sent = sql(
            f"status = 'sent', message_id = %s, last_error = NULL, attempts = attempts + 1, "
            f"{_SET_DONE}"
        )
        self._failed = sql(
            f"status = 'failed', last_error = %s, attempts = attempts + %s, {_SET_DONE}"
        )
        # a row left pending stays this sender's until it ends (`Claims.close` gives it back):
        # it must not come back to this run as a fresh row
        self._pending = sql("last_error = %s, attempts = attempts + %s")
        # a row left to a later run is given back at once (PostgreSQL), not to be taken again
        # before its time: no other sender waits for it, none sends it sooner
        self._later = (
            sql(
                "last_error = %s, attempts = attempts + %s, lease_owner = NULL, "
                "lease_until = now() + %s::float8 * interval '1 second'"
            )
            if db.dialect == "postgresql"
            else None
        )
        self._skipped = sql(f"status = 'skipped', last_error = %s, {_SET_DONE}")
        self._writer: _Writer = (
            _OwnConnections(db) if db.dialect == "postgresql" else _GroupCommit(db)
        )

    def sent(self, email: str, message_id: str | None) -> bool:
        """The server accepted the message."""
        return self._run(self._sent, email, message_id)

    def failed(self, email: str, error: str, *, tried: bool = True) -> bool:
        """Refused for good (or given up); `tried=False` counts no try."""
        return self._run(self._failed, email, error[: self._max_error], int(tried))

    def pending(self, email: str, error: str, *, tried: bool = True) -> bool:
        """Not sent for now, and why: retried in this run or left to a later one; `tried=False`
        counts no try (a refusal about our side, a transport that cannot work)."""
        return self._run(self._pending, email, error[: self._max_error], int(tried))

    def later(self, email: str, error: str, *, after: float) -> bool:
        """Left to a later run (tried, and refused for now): given back to every sender, to be
        taken again only `after` seconds from now."""
        if self._later is None:  # one sender per SQLite state: no lease to give back
            return self.pending(email, error)
        return self._run(self._later, email, error[: self._max_error], 1, after)

    def skipped(self, email: str, reason: str) -> bool:
        """Nothing to send to this row (unsubscribed since, no topic with papers)."""
        return self._run(self._skipped, email, reason)

    def _run(self, sql: str, email: str, *values: Any) -> bool:
        params = (*values, self._stamp(self._clock()), self._issue, email)
        if self._claims.owner is not None:
            params += (self._claims.owner,)
        if self._writer.execute(sql, params):
            return True
        log.warning(
            "ledger %s: %s was no longer pending under this sender's claim (sent or taken over "
            "by another sender); left as it is",
            self._issue,
            email,
        )
        return False

    def close(self) -> None:
        self._writer.close()


class _Writer:
    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _OwnConnections(_Writer):
    """A connection of its own for each thread, in autocommit: a mark is one round trip.

    Each statement is prepared once per connection and run through libpq's own call (psycopg's
    `pgconn.exec_prepared`, which lets other threads run meanwhile), its parameters sent as
    text: psycopg's cursor spent 30 us more of this process's time on every mark.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        local = self._local
        try:
            if getattr(local, "conn", None) is None:
                self._open()
            name = local.prepared.get(sql)
            if name is None:
                name = local.prepared[sql] = f"mark{len(local.prepared)}".encode()
                numbered = sql.replace("%s", "${}").format(*range(1, sql.count("%s") + 1))
                _checked(local.conn.pgconn.prepare(name, numbered.encode(), None), self._db)
            values = [None if v is None else _text(v) for v in params]
            result = _checked(local.conn.pgconn.exec_prepared(name, values, None), self._db)
            return int(result.command_tuples or 0)
        except Exception as e:
            if type(e).__module__.startswith("psycopg"):
                raise self._db.error(e) from e
            raise

    def _open(self) -> None:
        raw = self._db.engine.raw_connection()
        conn: Any = raw.driver_connection
        raw.detach()  # ours until the send ends, not the pool's
        conn.autocommit = True
        self._local.conn = conn
        self._local.prepared = {}
        with self._lock:
            self._opened.append(conn)

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            conn.close()


def _text(value: Any) -> bytes:
    """A parameter in PostgreSQL's text form (a timestamp in ISO 8601, with its offset)."""
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()


def _checked(result: Any, db: Database) -> Any:
    from psycopg import pq  # present whenever a PostgreSQL state is

    if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        message = (result.error_message or b"").decode(errors="replace").strip()
        first = message.splitlines()[0] if message else "the statement failed"
        raise StoreError(f"{db.label}: {first}")
    return result


class _GroupCommit(_Writer):
    """One SQLite connection shared by the sending threads, committing their marks together.

    A thread that wants to write queues its statement; if no commit is under way it takes every
    statement queued so far and commits them in one transaction (a statement alone runs as its
    own transaction), else it waits for the one under way and for its own turn. Each call returns
    only once its own statement is committed, so a thread still takes its next message only
    after its mark is on disk (in the WAL).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._raw: Any = None
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._busy = False

    def execute(self, sql: str, params: tuple[Any, ...]) -> int:
        ticket = _Ticket(sql, params)
        with self._cond:
            self._queue.append(ticket)
            while not ticket.done and self._busy:
                self._cond.wait()
            if ticket.done:
                return ticket.result()
            batch, self._queue, self._busy = self._queue, [], True
        try:
            self._commit(batch)
        finally:
            with self._cond:
                self._busy = False
                if len(batch) > 1 or self._queue:  # others wait: for their mark, or their turn
                    self._cond.notify_all()
        return ticket.result()

    def _commit(self, batch: list[_Ticket]) -> None:
        try:
            if self._raw is None:
                self._raw = self._db.engine.raw_connection()
            db: sqlite3.Connection = self._raw.driver_connection
            if len(batch) == 1:  # alone: one statement, its own transaction (one call, not three)
                batch[0].count = db.execute(batch[0].sql, batch[0].params).rowcount
                return
            db.execute("BEGIN IMMEDIATE")  # wait for the write lock up front
            try:
                for ticket in batch:
                    ticket.count = db.execute(ticket.sql, ticket.params).rowcount
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
        except BaseException as e:
            error: BaseException = e
            if isinstance(e, sqlite3.Error):
                error = self._db.error(e)
                error.__cause__ = e
            for ticket in batch:
                ticket.error = error
        finally:
            for ticket in batch:
                ticket.done = True

    def close(self) -> None:
        with self._cond:
            raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()


class _Ticket:
    __slots__ = ("count", "done", "error", "params", "sql")

    def __init__(self, sql: str, params: tuple[Any, ...]) -> None:
        self.sql, self.params = sql, params
        self.count = 0
        self.done = False
        self.error: BaseException | None = None

    def result(self) -> int:
        if self.error is not None:
            raise self.error
        return self.count
