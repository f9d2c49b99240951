"""Web sign-ups waiting for their confirmation, each request kept apart (as Mailman 3's pendings).

A sign-up form proves nothing about who typed it. So a request is stored as it was made, under
a random id, and the confirmation link signs that id: confirming applies exactly the name, topics
and format of the request whose link was followed, and nothing a later stranger sent for the same
address. Opening a request also queues its confirmation email (`mail_queue`) in the same
transaction, so a request is never left without its email (nor an email without its request).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from newsletter.models import Subscriber
from newsletter.store.database import Database
from newsletter.store.schema import (
    email_key,
    mail_queue,
    new_id,
    signups,
    subscriber_of,
    subscribers,
    topics_value,
)

log = logging.getLogger(__name__)

# A request nobody confirmed is forgotten after this long (Mailman keeps its pendings 3 days;
# the expired-link page may still offer a new link for a while).
KEEP = timedelta(days=30)
CONFIRM = "confirm"  # the `mail_queue` kind of a confirmation email


@dataclass(frozen=True, slots=True)
class Signup:
    """One sign-up request as it was made."""

    id: str
    subscriber: Subscriber
    created_at: datetime


def _signup(row: Any) -> Signup:
    return Signup(row.id, subscriber_of(row, source="web"), row.created_at)


class Signups:
    """The pending sign-up requests of one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self, subscriber: Subscriber, resend_window: timedelta) -> str | None:
        """Record a request and queue its confirmation; None when one went out too recently.

        An address without a row gets a pending one (so `subscribers list` shows it); an
        existing row is left as it is: only a confirmation changes what it holds.
        """
        email = email_key(subscriber.email)
        now = self.db.clock()
        with self.db.write() as conn:
            if not self._claim(conn, email, now, resend_window, subscriber):
                return None
            request = new_id()
            conn.execute(
                signups.insert().values(
                    id=request,
                    email=email,
                    name=subscriber.name,
                    topics=topics_value(subscriber.topics),
                    format=subscriber.format,
                    created_at=now,
                )
            )
            self._queue(conn, email, request, now)
            _forget_old(conn, now)
        return request

    def forget_old(self) -> None:
        """Forget requests nobody confirmed within `KEEP` (the mail worker calls this)."""
        with self.db.write() as conn:
            _forget_old(conn, self.db.clock())

    def again(self, request: str, resend_window: timedelta) -> bool:
        """Queue one more confirmation of a request (its link expired); False when too soon."""
        now = self.db.clock()
        with self.db.write() as conn:
            row = conn.execute(sa.select(signups).where(signups.c.id == request)).first()
            if row is None or not self._claim(conn, row.email, now, resend_window, None):
                return False
            self._queue(conn, row.email, request, now)
        return True

    def get(self, request: str) -> Signup | None:
        with self.db.read() as conn:
            row = conn.execute(sa.select(signups).where(signups.c.id == request)).first()
        return None if row is None else _signup(row)

    def confirm(self, request: str) -> Subscriber | None:
        """Apply a request to its address, confirmed; forget every request of that address.

        Returns what was applied, or None when the request is unknown (used, or forgotten).
        """
        now = self.db.clock()
        with self.db.write() as conn:
            row = conn.execute(sa.select(signups).where(signups.c.id == request)).first()
            if row is None:
                return None
            applied = _signup(row).subscriber
            values: dict[str, Any] = {
                "name": applied.name,
                "topics": topics_value(applied.topics),
                "format": applied.format,
                "status": "confirmed",
            }
            where = subscribers.c.email == row.email
            current = conn.execute(sa.select(subscribers.c.status).where(where)).first()
            if current is None:
                conn.execute(
                    subscribers.insert().values(
                        email=row.email, source="web", created_at=now, confirmed_at=now, **values
                    )
                )
            else:
                if current.status != "confirmed":
                    values["confirmed_at"] = now
                conn.execute(subscribers.update().where(where).values(values))
            # the other requests for this address (a stranger's among them) die with this one
            conn.execute(signups.delete().where(signups.c.email == row.email))
            conn.execute(
                mail_queue.delete().where(
                    mail_queue.c.email == row.email, mail_queue.c.kind == CONFIRM
                )
            )
        return applied

    # -- inside a transaction -----------------------------------------------------------------

    def _claim(
        self,
        conn: sa.Connection,
        email: str,
        now: datetime,
        window: timedelta,
        subscriber: Subscriber | None,
    ) -> bool:
        """Take this window's confirmation email of an address (at most one per window)."""
        where = subscribers.c.email == email
        row = conn.execute(sa.select(subscribers.c.confirm_sent_at).where(where)).first()
        if (
            row is not None
            and row.confirm_sent_at is not None
            and now - row.confirm_sent_at < window
        ):
            log.info("confirmation for %s already sent at %s; not again yet", email, row[0])
            return False
        if row is None and subscriber is not None:
            conn.execute(
                subscribers.insert().values(
                    email=email,
                    name=subscriber.name,
                    topics=topics_value(subscriber.topics),
                    format=subscriber.format,
                    source="web",
                    status="pending",
                    created_at=now,
                    confirm_sent_at=now,
                )
            )
        else:
            conn.execute(subscribers.update().where(where).values(confirm_sent_at=now))
        return True

    def _queue(self, conn: sa.Connection, email: str, request: str, now: datetime) -> None:
        conn.execute(
            mail_queue.insert().values(
                kind=CONFIRM, email=email, ref=request, created_at=now, due_at=now, attempts=0
            )
        )


def _forget_old(conn: sa.Connection, now: datetime) -> None:
    conn.execute(signups.delete().where(signups.c.created_at < now - KEEP))
