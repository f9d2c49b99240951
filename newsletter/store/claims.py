"""The rows one sender works through, on SQLite and on PostgreSQL.

A SQLite state has one sender at a time (a file lock, `newsletter.store.locks`): it reads the
pending rows in address order, a batch at a time. A PostgreSQL state may have any number of
senders, on any number of hosts: each claims a batch of rows with `FOR UPDATE SKIP LOCKED`,
stamping them with its name and a lease (an expiry, in the database's clock). A heartbeat
renews the lease of every row it holds; if it cannot (the database is out of reach) the sender
stops taking rows before the lease can run out (a message already in flight may still end after
it, and its row go to another sender). A sender that dies holds its rows until their lease runs
out; then another takes them. What it sent is marked through `claims.marks` (see
`newsletter.store.marks`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from newsletter.errors import StoreError
from newsletter.store.database import Database
from newsletter.store.marks import Marks
from newsletter.store.schema import ADD_ID, MAX_ERROR_CHARS, new_id

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
_PG_HELD = (
    "SELECT count(*), extract(epoch FROM min(lease_until) - now()) FROM ledger "
    "WHERE issue_id = %s AND status = 'pending' AND lease_owner <> %s AND lease_until >= now()"
)
# The rows a sender holds, locked in address order as every statement that locks many ledger
# rows takes them (the audience writer's too: none can wait for another in a circle).
_HELD_BY = (
    "(issue_id, email) IN (SELECT issue_id, email FROM ledger WHERE lease_owner = %s "
    "AND issue_id = %s AND status = 'pending' ORDER BY email FOR UPDATE)"
)
_PG_RENEW = f"UPDATE ledger SET lease_until = now() + %s * interval '1 second' WHERE {_HELD_BY}"
_PG_RELEASE = f"UPDATE ledger SET lease_owner = NULL, lease_until = NULL WHERE {_HELD_BY}"


def sender_name() -> str:
    """A name for this sender, unique across hosts and runs: host, process, random part."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Claims:
    """One sender's rows of one issue: take them in batches, mark each, give back the rest."""

    def __init__(self, db: Database, issue_id: str, lease_seconds: float) -> None:
        self.db, self.issue_id, self.lease = db, issue_id, lease_seconds
        self.owner: str | None = None  # the lease owner; None on SQLite (no leases)
        self.marks = Marks(self, max_error=MAX_ERROR_CHARS)

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
            cur.executemany(sql(ADD_ID), [(new_id(), email, stamp) for email in missing])
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
