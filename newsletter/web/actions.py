"""What the subscription pages do to the state store: sign up, confirm, unsubscribe, preferences.

Plain synchronous code (the web handlers run it in a worker thread), so tests can call it
directly too. One lock serialises the read-then-write steps of one process: five sign-ups of one
address arriving together still send one confirmation. Across processes the store's own
transactions keep each write whole; the once-a-day limit reads the stored `confirm_sent_at`.

Links carry opaque ids, never an address: unsubscribe and preference links a recipient id
(`store.recipients`), confirm links the id of one sign-up request (`store.signups`), so that a
confirmation applies that request and nothing a stranger sent later for the same address. A
link made before these ids signed the address itself; such links still work (an unsubscribe link
for good, a confirm link until it expires).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from newsletter.audience.subscribers import load_subscribers
from newsletter.audience.tokens import SecretKeys, TokenMaker, is_address
from newsletter.errors import TokenError
from newsletter.models import Subscriber

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

# Reading an expired confirm link for its address (to offer a new one) still checks its
# signature; only the age is waived.
_ANY_AGE = 100 * 365 * 24 * 3600

Linked = Literal["unsubscribe", "preferences"]


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
        self.tokens = TokenMaker(keys, clock=self._now)
        self._lock = threading.Lock()

    # -- tokens -------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.clock().timestamp()

    def token(self, purpose: Linked, email: str) -> str:
        """The token of an unsubscribe or preferences link: it signs the recipient's id."""
        return self.tokens.make(purpose, self.store.recipients.id_of(email))

    def read(self, purpose: Linked, token: str) -> str:
        """Return the address an unsubscribe or preferences link is for, or raise `TokenError`."""
        value = self.tokens.read(purpose, token)
        if is_address(value):
            return value  # a link made before recipient ids
        email = self.store.recipients.email_of(value)
        if email is None:
            raise TokenError(f"this {purpose} link is not valid (it names no one)", kind="bad")
        return email

    def read_confirm(self, token: str) -> str:
        """Return what a confirm link names (a sign-up request, or an old link's address)."""
        return self.tokens.read("confirm", token, int(self.config.web.confirm_max_age_hours * 3600))

    def read_expired_confirm(self, token: str) -> str:
        """`read_confirm` for a genuine confirm token of any age; `TokenError` if forged."""
        return self.tokens.read("confirm", token, _ANY_AGE)

    def confirm_link(self, request: str) -> str:
        """The absolute confirm link of a sign-up request (from `base_url`, never the Host)."""
        return f"{self.config.base_url}/confirm?token={self.tokens.make('confirm', request)}"

    # -- sign-up and confirmation -------------------------------------------------------------

    def sign_up(self, subscriber: Subscriber) -> bool:
        """Record a web sign-up; return True when its confirmation email was queued.

        An address already subscribed (and not unsubscribed since) is left exactly as it is: the
        form proves nothing about who typed it, so it must not change anyone's choices. Nor does
        a request change a pending sign-up: each is kept apart until its own link confirms it.
        """
        with self._lock:
            if self._subscribed(subscriber.email):
                log.info("sign-up of %s: already subscribed; nothing sent", subscriber.email)
                return False
            # new, pending, or confirmed once and unsubscribed since (a re-subscription)
            return self.store.signups.open(subscriber, self._resend_window()) is not None

    def resend(self, named: str) -> bool:
        """Queue a fresh confirmation for what an expired link named; False if none is due."""
        with self._lock:
            if is_address(named):  # an old link: its sign-up is the stored pending row
                existing = self.store.get_subscriber(named)
                if existing is None or self._subscribed(named):
                    return False
                return (
                    self.store.signups.open(existing.subscriber, self._resend_window()) is not None
                )
            request = self.store.signups.get(named)
            if request is None or self._subscribed(request.subscriber.email):
                return False
            return self.store.signups.again(named, self._resend_window())

    def confirm(self, named: str) -> str | None:
        """Confirm what a link names; return the address, or None when nothing waits for it.

        An explicit confirmation also lifts an earlier unsubscribe.
        """
        with self._lock:
            if is_address(named):  # an old link: confirm the stored row as it is
                if self.store.get_subscriber(named) is None:
                    return None
                self.store.confirm_subscriber(named)
                email = named
            else:
                applied = self.store.signups.confirm(named)
                if applied is None:
                    return None
                email = applied.email
            if self.store.clear_suppression(email):
                log.info("%s subscribed again; suppression lifted", email)
            return email

    def _subscribed(self, email: str) -> bool:
        existing = self.store.get_subscriber(email)
        confirmed = existing is not None and existing.status == "confirmed"
        return confirmed and not self.store.is_suppressed(email)

    def _resend_window(self) -> timedelta:
        return timedelta(hours=self.config.web.confirm_resend_hours)

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


__all__ = ["Current", "Linked", "Subscriptions", "TokenError"]
