"""The rows one sender works through, and the marks it makes, on SQLite and on PostgreSQL.

A SQLite state has one sender at a time (a file lock, `newsletter.store.locks`): it reads the
pending rows in address order, a batch at a time. A PostgreSQL state may have any number of
senders, on any number of hosts: each claims a batch of rows with `FOR UPDATE SKIP LOCKED`,
stamping them with its name and a lease (an expiry, in the database's clock). A heartbeat
renews the lease of every row it holds; if it cannot (the database is out of reach) the sender
stops taking rows before the lease can run out, so no row is ever held by two live senders. A
sender that dies holds its rows until their lease runs out; then another takes them.

Each mark is one statement, committed before the sending thread takes its next message: on
PostgreSQL in autocommit on a connection the thread keeps (one round trip, no BEGIN or COMMIT,
no pool check), and only while the row is still this sender's; on SQLite through a group commit,
so that threads marking at the same moment share one transaction instead of queueing for it.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.errors import StoreError
from newsletter.store.database import Database, db_message
from newsletter.store.schema import MAX_ERROR_CHARS, new_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A pending row taken for sending, with what its message needs."""

    email: str
    name: str | None
    variant: str
    attempts: int  # tries recorded so far
    last_error: str | None
    recipient_id: str  # the opaque id its links carry
    suppressed: bool  # unsubscribed or bounced since it was written


_SELECT = (
    "l.email, l.name, l.variant, l.attempts, l.last_error, "
    "(SELECT r.id FROM recipients r WHERE r.email = l.email), "
    "EXISTS (SELECT 1 FROM suppressions s WHERE s.email = l.email)"
)
_SQLITE_TAKE = (
    f"SELECT {_SELECT} FROM ledger l WHERE l.issue_id = ? AND l.status = 'pending' "
    "AND l.email > ? ORDER BY l.email LIMIT ?"
)
_PG_TAKE = (
    "WITH picked AS (SELECT issue_id, email FROM ledger WHERE issue_id = %s "
    "AND status = 'pending' AND (lease_until IS NULL OR lease_until < now()) "
    "LIMIT %s FOR UPDATE SKIP LOCKED) "
    "UPDATE ledger AS l SET lease_owner = %s, lease_until = now() + %s * interval '1 second' "
    f"FROM picked WHERE l.issue_id = picked.issue_id AND l.email = picked.email RETURNING {_SELECT}"
)
_ADD_ID = (
    "INSERT INTO recipients (id, email, created_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
)
_PG_HELD = (
    "SELECT count(*), extract(epoch FROM min(lease_until) - now()) FROM ledger "
    "WHERE issue_id = %s AND status = 'pending' AND lease_owner <> %s AND lease_until >= now()"
)
_PG_RENEW = (
    "UPDATE ledger SET lease_until = now() + %s * interval '1 second' "
    "WHERE lease_owner = %s AND issue_id = %s AND status = 'pending'"
)
_PG_RELEASE = (
    "UPDATE ledger SET lease_owner = NULL, lease_until = NULL "
    "WHERE lease_owner = %s AND issue_id = %s AND status = 'pending'"
)


def sender_name() -> str:
    """A name for this sender, unique across hosts and runs: host, process, random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Claims:
    """One sender's rows of one issue: take them in batches, mark each, give back the rest."""

    def __init__(self, db: Database, issue_id: str, lease_seconds: float) -> None:
        self.db, self.issue_id, self.lease = db, issue_id, lease_seconds
        self.owner: str | None = None  # the lease owner; None on SQLite (no leases)
        self.marks = Marks(self)

    def take(self, n: int) -> list[Claimed]:
        """Up to `n` rows to send; none when there is nothing left to take right now."""
        raise NotImplementedError

    def held_elsewhere(self) -> float | None:
        """Seconds until the first lease of another sender runs out; None when none holds rows."""
        return None

    def holding(self) -> bool:
        """True while the rows this sender took are surely still its own."""
        return True

    def close(self) -> None:
        """Give back the rows taken and not finished; close the connections."""
        self.marks.close()

    def _with_ids(self, conn: Any, rows: list[Any]) -> list[Claimed]:
        """The claimed rows, each with its recipient id (made here for an address's first send,
        in the claim's own transaction)."""
        missing = [r[0] for r in rows if r[5] is None]
        made: dict[str, str] = {}
        if missing:
            sql, stamp = self.db.sql, self.db.stamp(self.db.clock())
            cur = conn.cursor()
            # another sender may have made some meanwhile: theirs are kept
            cur.executemany(sql(_ADD_ID), [(new_id(), email, stamp) for email in missing])
            for start in range(0, len(missing), 500):
                part = missing[start : start + 500]
                marks = ", ".join(["%s"] * len(part))
                cur.execute(sql(f"SELECT email, id FROM recipients WHERE email IN ({marks})"), part)
                made.update(cur.fetchall())
        return [
            Claimed(r[0], r[1], r[2], int(r[3]), r[4], r[5] or made[r[0]], bool(r[6])) for r in rows
        ]


class SqliteClaims(Claims):
    """The pending rows in address order, a batch at a time (one sender per SQLite state)."""

    def __init__(self, db: Database, issue_id: str, lease_seconds: float) -> None:
        super().__init__(db, issue_id, lease_seconds)
        self._last = ""

    def take(self, n: int) -> list[Claimed]:
        with self.db.raw() as conn:
            rows = conn.execute(_SQLITE_TAKE, (self.issue_id, self._last, n)).fetchall()
            taken = self._with_ids(conn, rows)
        if rows:
            self._last = rows[-1][0]
        return taken


class PgClaims(Claims):
    """Rows claimed with a lease, which a heartbeat renews while the sender lives."""

    def __init__(self, db: Database, issue_id: str, lease_seconds: float) -> None:
        super().__init__(db, issue_id, lease_seconds)
        self.owner = sender_name()
        self._valid_until = time.monotonic() + lease_seconds
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="lease", daemon=True)
        self._beat.start()

    def take(self, n: int) -> list[Claimed]:
        with self.db.raw() as conn:
            rows = conn.execute(_PG_TAKE, (self.issue_id, n, self.owner, self.lease)).fetchall()
            return self._with_ids(conn, rows)

    def held_elsewhere(self) -> float | None:
        with self.db.raw() as conn:
            count, seconds = conn.execute(_PG_HELD, (self.issue_id, self.owner)).fetchone()
        return None if not count else max(0.0, float(seconds))

    def holding(self) -> bool:
        # a quarter of the lease to spare: the database's clock may run ahead of ours
        return time.monotonic() < self._valid_until - self.lease / 4

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease / 4):
            started = time.monotonic()
            try:
                with self.db.raw() as conn:
                    conn.execute(_PG_RENEW, (self.lease, self.owner, self.issue_id))
            except StoreError as e:
                log.warning("could not renew the lease of this sender's rows: %s", e)
                continue
            self._valid_until = started + self.lease

    def close(self) -> None:
        self._stop.set()
        self._beat.join()
        try:
            with self.db.raw() as conn:
                conn.execute(_PG_RELEASE, (self.owner, self.issue_id))
        except StoreError as e:  # their lease runs out on its own
            log.warning("could not give back the rows not sent: %s", e)
        super().close()


def claims_for(db: Database, issue_id: str, lease_seconds: float) -> Claims:
    """The claims of one sender on one issue, as the database can take them."""
    kind = PgClaims if db.dialect == "postgresql" else SqliteClaims
    return kind(db, issue_id, lease_seconds)


# -- marks ----------------------------------------------------------------------------------------

_SET_DONE = "lease_owner = NULL, lease_until = NULL"


class Marks:
    """The marks of one sender: each one statement, committed when the call returns."""

    def __init__(self, claims: Claims) -> None:
        self._claims = claims
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
        self._skipped = sql(f"status = 'skipped', last_error = %s, {_SET_DONE}")
        self._writer: _Writer = (
            _OwnConnections(db) if db.dialect == "postgresql" else _GroupCommit(db)
        )

    def sent(self, email: str, message_id: str | None) -> bool:
        """The server accepted the message."""
        return self._run(self._sent, email, message_id)

    def failed(self, email: str, error: str, *, tried: bool = True) -> bool:
        """Refused for good (or given up); `tried=False` counts no try."""
        return self._run(self._failed, email, error[:MAX_ERROR_CHARS], int(tried))

    def pending(self, email: str, error: str, *, tried: bool = True) -> bool:
        """Not sent for now, and why: retried in this run or left to a later one; `tried=False`
        counts no try (a refusal about our side, a transport that cannot work)."""
        return self._run(self._pending, email, error[:MAX_ERROR_CHARS], int(tried))

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
                raise StoreError(f"{self._db.label}: {db_message(e)}") from e
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
                error = StoreError(f"{self._db.label}: {db_message(e)}")
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
