"""Emails waiting to go out from the web side (confirmations), kept in the state like a queue.

The pages only add a row; a worker of its own (`newsletter.web.mailer`) sends the rows that are
due. As in Postfix's deferred queue, a row that could not go out gets a later due time with
growing backoff, and one older than its lifetime is given up. Nothing lives only in memory, so a
restart loses no email. A worker claims a row by pushing its due time a lease ahead, in one
transaction: two `serve` processes on one state never send the same row at once, and a row
whose worker died comes due again when the lease runs out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from newsletter.store.database import Database
from newsletter.store.schema import mail_queue

log = logging.getLogger(__name__)

_MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class QueuedMail:
    id: int
    kind: str
    email: str
    ref: str  # what the email is about (the sign-up request a confirmation confirms)
    created_at: datetime
    attempts: int  # tries so far, this one included once claimed
    last_error: str | None


class MailQueue:
    """The queued emails of one state database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(self, lease: timedelta, limit: int = 20) -> list[QueuedMail]:
        """Take up to `limit` due rows for sending: each is hidden for `lease` meanwhile."""
        now = self.db.clock()
        due = (
            sa.select(mail_queue)
            .where(mail_queue.c.due_at <= now)
            .order_by(mail_queue.c.due_at, mail_queue.c.id)
            .limit(limit)
        )
        claimed = []
        with self.db.write() as conn:
            for row in conn.execute(due).all():
                taken = conn.execute(
                    mail_queue.update()
                    .where(mail_queue.c.id == row.id, mail_queue.c.due_at == row.due_at)
                    .values(due_at=now + lease, attempts=mail_queue.c.attempts + 1)
                ).rowcount
                if taken:
                    claimed.append(
                        QueuedMail(
                            row.id,
                            row.kind,
                            row.email,
                            row.ref,
                            row.created_at,
                            row.attempts + 1,
                            row.last_error,
                        )
                    )
        return claimed

    def done(self, item: QueuedMail) -> None:
        """The email went out (or is given up): forget it."""
        with self.db.write() as conn:
            conn.execute(mail_queue.delete().where(mail_queue.c.id == item.id))

    def defer(self, item: QueuedMail, delay: timedelta, error: str) -> None:
        """Try again after `delay`, keeping what went wrong."""
        with self.db.write() as conn:
            conn.execute(
                mail_queue.update()
                .where(mail_queue.c.id == item.id)
                .values(due_at=self.db.clock() + delay, last_error=error[:_MAX_ERROR_CHARS])
            )

    def next_due(self) -> datetime | None:
        """When the earliest row comes due (None for an empty queue)."""
        with self.db.read() as conn:
            return conn.execute(sa.select(sa.func.min(mail_queue.c.due_at))).scalar()

    def waiting(self) -> list[QueuedMail]:
        """Every queued row, in due order."""
        query = sa.select(mail_queue).order_by(mail_queue.c.due_at, mail_queue.c.id)
        with self.db.read() as conn:
            return [
                QueuedMail(r.id, r.kind, r.email, r.ref, r.created_at, r.attempts, r.last_error)
                for r in conn.execute(query)
            ]
