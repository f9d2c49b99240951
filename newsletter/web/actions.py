"""What the subscription pages do to the state store: sign up, confirm, unsubscribe, preferences.

Plain synchronous code (the web handlers run it in a worker thread), so tests can call it
directly too. One lock serialises the read-then-write steps of one process: five sign-ups of one
address arriving together still send one confirmation. Across processes the store's own
transactions keep each write whole; the once-a-day limit reads the stored `confirm_sent_at`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from newsletter.audience.subscribers import load_subscribers
from newsletter.audience.tokens import Purpose, SecretKeys, make_token, read_token
from newsletter.errors import TokenError
from newsletter.models import Subscriber

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

# Reading an expired confirm link for its address (to offer a new one) still checks its
# signature; only the age is waived.
_ANY_AGE = 100 * 365 * 24 * 3600

ConfirmOutcome = Literal["confirmed", "unknown"]


@dataclass(frozen=True)
class Current:
    """A subscriber's settings as the preferences page shows them."""

    subscriber: Subscriber
    suppressed: bool
    stored: bool  # has a row in the state store (else: from the file, or not known at all)


class Subscriptions:
    """The state changes behind the pages; `clock` is the store's unless given."""

    def __init__(
        self,
        config: Config,
        store: Store,
        keys: SecretKeys,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.keys = keys
        self.clock = clock or store.clock
        self._lock = threading.Lock()

    # -- tokens -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock().timestamp()

    def token(self, purpose: Purpose, email: str) -> str:
        return make_token(purpose, email, self.keys, clock=self._now)

    def read(self, purpose: Purpose, token: str) -> str:
        """Return the address of a token, or raise `TokenError` (bad or expired)."""
        max_age = None
        if purpose == "confirm":
            max_age = int(self.config.web.confirm_max_age_hours * 3600)
        return read_token(purpose, token, self.keys, max_age, clock=self._now)

    def read_expired_confirm(self, token: str) -> str:
        """Return the address of a genuine confirm token of any age; `TokenError` if forged."""
        return read_token("confirm", token, self.keys, _ANY_AGE, clock=self._now)

    def link(self, purpose: Purpose, email: str) -> str:
        """Return the absolute link for a purpose (from `base_url`, never the request's Host)."""
        return f"{self.config.base_url}/{purpose}?token={self.token(purpose, email)}"

    # -- sign-up and confirmation -------------------------------------------------------------

    def sign_up(self, subscriber: Subscriber) -> bool:
        """Record a web sign-up; return True when a confirmation email should go out now.

        An address already subscribed (and not unsubscribed since) is left exactly as it is: the
        form proves nothing about who typed it, so it must not change anyone's choices.
        """
        with self._lock:
            existing = self.store.get_subscriber(subscriber.email)
            suppressed = self.store.is_suppressed(subscriber.email)
            if existing is not None and existing.status == "confirmed" and not suppressed:
                log.info("sign-up of %s: already subscribed; nothing sent", subscriber.email)
                return False
            # new, pending, or confirmed once and unsubscribed since (a re-subscription)
            self.store.add_subscriber(subscriber, status="pending")
            return self._claim_confirmation(subscriber.email)

    def resend(self, email: str) -> bool:
        """Return True when a fresh confirmation should go to `email` (from an expired link)."""
        with self._lock:
            existing = self.store.get_subscriber(email)
            if existing is None:
                return False
            if existing.status == "confirmed" and not self.store.is_suppressed(email):
                return False
            return self._claim_confirmation(email)

    def _claim_confirmation(self, email: str) -> bool:
        """Take today's confirmation email of an address, if it has not gone out yet."""
        stored = self.store.get_subscriber(email)
        last = stored.confirm_sent_at if stored is not None else None
        window = timedelta(hours=self.config.web.confirm_resend_hours)
        if last is not None and self.clock() - last < window:
            log.info("confirmation for %s already sent at %s; not again yet", email, last)
            return False
        self.store.mark_confirm_sent(email)
        return True

    def confirm(self, email: str) -> ConfirmOutcome:
        """Confirm a subscription; an explicit confirmation also lifts an earlier unsubscribe."""
        with self._lock:
            if self.store.get_subscriber(email) is None:
                return "unknown"
            self.store.confirm_subscriber(email)
            if self.store.clear_suppression(email):
                log.info("%s subscribed again; suppression lifted", email)
            return "confirmed"

    # -- unsubscribe and preferences ----------------------------------------------------------

    def unsubscribe(self, email: str, how: str) -> bool:
        """Suppress an address (idempotent); return True if this call suppressed it."""
        with self._lock:
            if self.store.is_suppressed(email):
                return False
            self.store.suppress(email, "unsubscribed", how)
            return True

    def current(self, email: str) -> Current:
        """Return what the preferences page shows: the store's row, else the file's entry."""
        suppressed = self.store.is_suppressed(email)
        stored = self.store.get_subscriber(email)
        if stored is not None:
            return Current(stored.subscriber, suppressed, True)
        listed = load_subscribers(self.config.subscribers_path, self.config.topic_names).subscribers
        match = next((s for s in listed if s.email == email), None)
        if match is not None:
            return Current(match, suppressed, False)
        return Current(Subscriber(email, source="web"), suppressed, False)

    def save_preferences(
        self, email: str, topics: frozenset[str] | None, fmt: Literal["html", "text"]
    ) -> None:
        """Store new topics and format; the state's row then wins over the file's entry."""
        with self._lock:
            now = self.current(email)
            source = now.subscriber.source if now.stored else "web"
            changed = replace(now.subscriber, topics=topics, format=fmt, source=source)
            # the link came in an issue sent to this address: it is proof enough to confirm
            self.store.add_subscriber(changed, status="confirmed")

    def resubscribe(self, email: str) -> None:
        """Lift an unsubscribe from the preferences page (the owner's explicit choice)."""
        with self._lock:
            now = self.current(email)
            if not now.stored:
                self.store.add_subscriber(replace(now.subscriber, source="web"), status="confirmed")
            else:
                self.store.confirm_subscriber(email)
            self.store.clear_suppression(email)


__all__ = ["ConfirmOutcome", "Current", "Subscriptions", "TokenError"]
