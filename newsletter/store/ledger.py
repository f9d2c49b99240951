"""The send ledger: one row per issue and recipient, worked through until none is pending.

`Store.ledger` holds one. A send first streams its audience into the ledger (`write_audience`,
in chunks, one transaction each): a new address becomes a pending row, a pending row takes the
recipient's current name and variant, a row already sent, failed or skipped stays as it is.
Pending rows the pass did not touch are no longer in the audience (`skip_absent`). Then the
senders claim rows (`Store.claims`, see `newsletter.store.claims`) and mark each one as the server
answers, in its own commit, before the connection that sent it takes its next message: each
connection has at most one message off the record at any time, and a crash or a second run only
sees the rows still pending.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any

import sqlalchemy as sa

from newsletter.store.database import Database, advisory_key
from newsletter.store.schema import (
    ADD_ID,
    LEDGER_STATUSES,
    LedgerRow,
    check_value,
    email_key,
    ledger,
    new_ids,
)

log = logging.getLogger(__name__)

ENQUEUE_CHUNK = 50_000  # audience rows per transaction: bounds memory (about 20 MB), and
# each commit writes the index pages it touched: fewer, larger chunks write each page for more rows
ANALYZE_AFTER = 1000  # new rows after which PostgreSQL's statistics of the ledger are renewed

AudienceRow = tuple[str, str, str | None]  # email, variant, name


@dataclass(frozen=True)
class Written:
    """What one pass of the audience did to the ledger."""

    rows: int  # audience rows written (new, or pending and refreshed, or already final)
    new: int  # of them, rows the ledger did not have
    at: datetime  # the pass's stamp: pending rows it touched carry it in `updated_at`


# One chunk as SQLite takes it: refresh the pending rows, then add the new ones. The INSERT's row
# count is the number of new rows, so nothing is counted before or after (linear in the rows).
_REFRESH = (  # a row's stamp never goes back (see _PG_UPSERT); the stamps compare as text
    "UPDATE ledger SET variant = %s, name = %s, updated_at = max(updated_at, %s) "
    "WHERE issue_id = %s AND email = %s AND status = 'pending'"
)
_ADD = (
    "INSERT INTO ledger (issue_id, email, variant, name, status, attempts, updated_at) "
    "VALUES (%s, %s, %s, %s, 'pending', 0, %s) ON CONFLICT DO NOTHING"
)
# PostgreSQL: the chunk is copied into a temporary table, then two statements do the same.
_PG_CHUNK = (
    "CREATE TEMP TABLE IF NOT EXISTS audience_chunk "
    "(email varchar(320) PRIMARY KEY, variant text, name text, rid text) ON COMMIT DELETE ROWS"
)
# One statement: a new address is inserted, a pending row takes the chunk's variant and name (a
# row already sent, failed or skipped stays as it is); the new rows are counted from what the
# statement returns (a row it inserted has no xmax yet). Each row is one probe of the primary
# key: joining the chunk to the ledger in an UPDATE ... FROM was planned as a scan of the issue.
# Rows are taken in address order, as every statement that locks many ledger rows takes them (no
# two can wait for each other). A row's stamp never goes back: two hosts writing the audience at
# once interleave their chunks, and the later pass must not find its rows older than itself
# (`skip_absent` would take them for people who left).
_PG_UPSERT = (
    "WITH w AS (INSERT INTO ledger (issue_id, email, variant, name, status, attempts, updated_at) "
    "SELECT %s, email, variant, name, 'pending', 0, %s FROM audience_chunk ORDER BY email "
    "ON CONFLICT (issue_id, email) DO UPDATE SET variant = excluded.variant, "
    "name = excluded.name, updated_at = GREATEST(ledger.updated_at, excluded.updated_at) "
    "WHERE ledger.status = 'pending' "
    "RETURNING (xmax = 0) AS added) SELECT count(*) FILTER (WHERE added) FROM w"
)
# Each address's recipient id (the one its links carry) is made when it is first written: an
# address that has one keeps it (see `newsletter.store.recipients`).
_PG_IDS = (
    "INSERT INTO recipients (id, email, created_at) SELECT rid, email, %s FROM audience_chunk "
    "ON CONFLICT DO NOTHING"
)


class Ledger:
    """The send ledger of one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # -- the audience ---------------------------------------------------------------------------

    def write_audience(
        self, issue_id: str, rows: Iterable[AudienceRow], *, chunk: int = ENQUEUE_CHUNK
    ) -> Written:
        """Stream the audience into the ledger, one transaction per `chunk` rows."""
        at = self.db.clock()
        stamp = self.db.stamp(at)
        written = new = 0
        it = iter(rows)
        while batch := list(islice(it, chunk)):
            # one row per address in a chunk, the last one winning
            unique = {email_key(email): (variant, name) for email, variant, name in batch}
            new += self._write_chunk(issue_id, unique, stamp)
            written += len(unique)
        if new >= ANALYZE_AFTER and self.db.dialect == "postgresql":
            # fresh statistics, as after any bulk load: with the table's old ones (empty) the
            # planner marks a row through the status index, reading every pending row each time
            with self.db.raw() as conn:
                conn.execute("ANALYZE ledger")
        return Written(written, new, at)

    def _write_chunk(
        self, issue_id: str, rows: dict[str, tuple[str, str | None]], stamp: Any
    ) -> int:
        with self.db.raw() as conn:
            if self.db.dialect == "postgresql":
                cur = _enqueuer(conn, self.db.dialect, issue_id)
                cur.execute(_PG_CHUNK)
                ids = new_ids(len(rows))
                copying = "COPY audience_chunk (email, variant, name, rid) FROM STDIN"
                with cur.copy(copying) as copy:
                    for (email, (variant, name)), rid in zip(rows.items(), ids, strict=True):
                        copy.write_row((email, variant, name, rid))
                added = int(cur.execute(_PG_UPSERT, (issue_id, stamp)).fetchone()[0])
                cur.execute(_PG_IDS, (stamp,))
                return added
            sql = self.db.sql
            refresh = [(v, n, stamp, issue_id, e) for e, (v, n) in rows.items()]
            conn.executemany(sql(_REFRESH), refresh)
            added = conn.executemany(
                sql(_ADD), [(issue_id, e, v, n, stamp) for e, (v, n) in rows.items()]
            )
            made = zip(new_ids(len(rows)), rows, strict=True)
            conn.executemany(sql(ADD_ID), [(rid, email, stamp) for rid, email in made])
            return int(added.rowcount)

    def skip_absent(self, issue_id: str, written: Written, reason: str) -> int:
        """Skip the pending rows a complete pass of the audience did not touch; return how many.

        A row another sender holds (its lease still running) is left alone.
        """
        held = (
            "lease_until >= now()" if self.db.dialect == "postgresql" else "lease_until IS NOT NULL"
        )
        absent = (
            "issue_id = %s AND status = 'pending' AND updated_at < %s "
            f"AND NOT (lease_owner IS NOT NULL AND {held})"
        )
        if self.db.dialect == "postgresql":  # the rows locked in address order (see above)
            absent = (
                "(issue_id, email) IN (SELECT issue_id, email FROM ledger WHERE "
                f"{absent} ORDER BY email FOR UPDATE)"
            )
        with self.db.raw() as conn:
            cur = _enqueuer(conn, self.db.dialect, issue_id)
            cur = cur.execute(
                self.db.sql(
                    "UPDATE ledger SET status = 'skipped', last_error = %s, updated_at = %s "
                    f"WHERE {absent}"
                ),
                (reason, self.db.stamp(self.db.clock()), issue_id, self.db.stamp(written.at)),
            )
            skipped = int(cur.rowcount)
        if skipped:
            log.info("ledger %s: %d no longer in the audience, skipped", issue_id, skipped)
        return skipped

    def forget(self, issue_id: str) -> int:
        """Delete the pending rows of an issue that was never archived (its run failed before
        anything was sent); return how many."""
        pending = (ledger.c.issue_id == issue_id) & (ledger.c.status == "pending")
        with self.db.write() as conn:
            return int(conn.execute(ledger.delete().where(pending)).rowcount)

    # -- reading --------------------------------------------------------------------------------

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

    def to_retry(self, issue_id: str) -> int:
        """Pending rows that were tried and failed for now: a later run tries them again."""
        query = sa.select(sa.func.count()).where(
            ledger.c.issue_id == issue_id,
            ledger.c.status == "pending",
            ledger.c.last_error.is_not(None),
        )
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())

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


def _enqueuer(conn: Any, dialect: str, issue_id: str) -> Any:
    """A cursor of the one writer of an issue's audience at a time (PostgreSQL: it holds the
    issue's "enqueue" advisory lock until the transaction ends); SQLite has one sender anyway."""
    if dialect != "postgresql":
        return conn
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("enqueue", issue_id),))
    return cur
