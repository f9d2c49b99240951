"""The state's side of an audience, read in chunks: nothing here holds a whole list in memory.

A send streams its audience (the subscribers file, then the state's confirmed subscribers)
into the ledger. For each chunk of the file it asks which addresses the state subscribes itself
(their own entry, with the topics chosen on the preferences page, comes later and wins) and which
it suppresses; then it reads the confirmed subscribers a page at a time, leaving out the
suppressed ones in the query itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa

from newsletter.models import Subscriber
from newsletter.store.database import Database
from newsletter.store.schema import subscriber_of, subscribers, suppressions

_LOOKUP = 500  # addresses per IN (...) list


class Roster:
    """Confirmed subscribers and suppressions, for a chunk of addresses or a page at a time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def known(self, emails: Sequence[str]) -> tuple[set[str], set[str]]:
        """Of `emails` (stored form): those subscribed in the state, those suppressed."""
        confirmed: set[str] = set()
        suppressed: set[str] = set()
        with self.db.read() as conn:
            for start in range(0, len(emails), _LOOKUP):
                part = list(emails[start : start + _LOOKUP])
                confirmed.update(
                    conn.execute(
                        sa.select(subscribers.c.email).where(
                            subscribers.c.email.in_(part), subscribers.c.status == "confirmed"
                        )
                    ).scalars()
                )
                suppressed.update(
                    conn.execute(
                        sa.select(suppressions.c.email).where(suppressions.c.email.in_(part))
                    ).scalars()
                )
        return confirmed, suppressed

    def confirmed(self, *, chunk: int = 5000) -> Iterator[Subscriber]:
        """Every confirmed subscriber not suppressed, oldest first, a page at a time."""
        last = 0
        not_suppressed = ~sa.exists().where(suppressions.c.email == subscribers.c.email)
        while True:
            query = (
                sa.select(subscribers)
                .where(subscribers.c.status == "confirmed", subscribers.c.id > last, not_suppressed)
                .order_by(subscribers.c.id)
                .limit(chunk)
            )
            with self.db.read() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                yield subscriber_of(row)
            if len(rows) < chunk:
                return
            last = rows[-1].id

    def suppressed_count(self) -> int:
        """How many confirmed subscribers are suppressed (an unsubscribe wins over them)."""
        query = (
            sa.select(sa.func.count())
            .select_from(subscribers)
            .where(
                subscribers.c.status == "confirmed",
                sa.exists().where(suppressions.c.email == subscribers.c.email),
            )
        )
        with self.db.read() as conn:
            return int(conn.execute(query).scalar_one())
