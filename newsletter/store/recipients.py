"""Opaque recipient ids: what the links in emails carry instead of the address.

A token used to sign the address itself, so every unsubscribe link put the address, base64 for
all to read, into URLs, proxy logs and referrers. Now each address gets a random id the first
time it is written into the ledger (or a page makes a link for it), kept for good in
`recipients`, and the links sign that id. Whoever sees a link learns nothing about the address;
only the state maps the id back. Subscribers from the hand-written file get theirs like anyone
else, when their first issue is enqueued.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

from newsletter.store.database import Database
from newsletter.store.schema import ADD_ID, email_key, new_id, recipients

log = logging.getLogger(__name__)


class Recipients:
    """The id of each address, made on first use and never changed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def id_of(self, email: str) -> str:
        """Return the id of one address, making it if needed."""
        key = email_key(email)
        query = sa.select(recipients.c.id).where(recipients.c.email == key)
        with self.db.read() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is not None:
            return str(found)
        sql = self.db.sql
        with self.db.raw() as conn:
            conn.execute(sql(ADD_ID), (new_id(), key, self.db.stamp(self.db.clock())))
            row = conn.execute(sql("SELECT id FROM recipients WHERE email = %s"), (key,))
            return str(row.fetchone()[0])

    def email_of(self, recipient_id: str) -> str | None:
        """Return the address an id stands for, or None for an id this state never made."""
        query = sa.select(recipients.c.email).where(recipients.c.id == recipient_id)
        with self.db.read() as conn:
            return conn.execute(query).scalar_one_or_none()
