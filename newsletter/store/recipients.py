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
from collections.abc import Iterable

import sqlalchemy as sa

from newsletter.store.database import Database
from newsletter.store.schema import email_key, new_id, recipients

log = logging.getLogger(__name__)

# Up to this many addresses are looked up by key; more read the whole table once (a send to
# 100,000 people reads it in one pass instead of 100,000 lookups).
_BY_KEY = 500
_CHUNK = 5000  # rows per insert, to bound the memory of one statement


class Recipients:
    """The id of each address, made on first use and never changed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ids(self, emails: Iterable[str]) -> dict[str, str]:
        """Return the id of every address (keyed by its stored form), making the missing ones."""
        wanted = list(dict.fromkeys(email_key(e) for e in emails))
        if not wanted:
            return {}
        found = self._known(wanted)
        missing = [e for e in wanted if e not in found]
        if missing:
            now = self.db.clock()
            rows = [{"id": new_id(), "email": e, "created_at": now} for e in missing]
            with self.db.write() as conn:
                for start in range(0, len(rows), _CHUNK):
                    # another process may have given one of them an id meanwhile: keep its id
                    conn.execute(self.db.insert_ignore(recipients), rows[start : start + _CHUNK])
            found.update(self._known(missing))
            log.debug("recipients: %d new ids", len(missing))
        return found

    def id_of(self, email: str) -> str:
        """Return the id of one address, making it if needed."""
        return self.ids([email])[email_key(email)]

    def email_of(self, recipient_id: str) -> str | None:
        """Return the address an id stands for, or None for an id this state never made."""
        query = sa.select(recipients.c.email).where(recipients.c.id == recipient_id)
        with self.db.read() as conn:
            return conn.execute(query).scalar_one_or_none()

    def _known(self, emails: list[str]) -> dict[str, str]:
        query = sa.select(recipients.c.email, recipients.c.id)
        with self.db.read() as conn:
            if len(emails) > _BY_KEY:
                wanted = set(emails)
                return {e: i for e, i in conn.execute(query) if e in wanted}
            found: dict[str, str] = {}
            for start in range(0, len(emails), _BY_KEY):
                chunk = emails[start : start + _BY_KEY]
                rows = conn.execute(query.where(recipients.c.email.in_(chunk)))
                found.update((email, rid) for email, rid in rows)
            return found
