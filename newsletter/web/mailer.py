"""Send the queued confirmation emails from one thread of their own, never from a page.

A page that sends mail shares its fate with the mail server: when the relay took a message and
never answered, every confirmation held a thread of the server's shared pool for up to ten
minutes, and after forty sign-ups no page answered at all. Now a sign-up only adds a row to the
state's `mail_queue` (in the transaction that records it) and wakes this worker. The worker is
one thread with its own time limits (`SMTP_TIMEOUT` a command, `FINAL_REPLY_TIMEOUT` for the
reply to a message), so a hung relay holds this thread and nothing else. What cannot go out now
is tried again later with growing backoff, as Postfix's deferred queue does (from a minute, since
someone waits for this email, up to Postfix's `maximal_backoff_time` of 4,000 s), and given up
once the sign-up is older than a confirm link lives. A restart loses nothing: the queue is in the
state, and a row claimed by a worker that died comes due again when its lease runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from newsletter.delivery import make_transport
from newsletter.delivery.smtp import SmtpTransport
from newsletter.web.confirm_mail import send_confirmation

if TYPE_CHECKING:
    import jinja2

    from newsletter.config import Config
    from newsletter.delivery.transport import Transport
    from newsletter.store.mail_queue import QueuedMail
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 20.0  # seconds per SMTP command for a confirmation
FINAL_REPLY_TIMEOUT = 60.0  # a confirmation is small, and a second copy does no harm
LEASE = timedelta(minutes=10)  # far longer than one email can take: connect, send, wait the reply
BATCH = 1  # rows claimed at a time: one, so a hung relay never outlasts the lease of the next
FIRST_BACKOFF = 60.0
MAX_BACKOFF = 4000.0
IDLE_POLL = 30.0  # an idle worker still looks for rows that another process queued


def confirmation_transport(config: Config) -> Transport:
    """The transport confirmations go through: the configured one, with this worker's limits."""
    settings = config.transport_settings()
    if settings.delivery.transport != "smtp":
        return make_transport(settings)
    smtp = settings.delivery.smtp
    bounded = smtp.model_copy(update={"timeout": min(smtp.timeout, SMTP_TIMEOUT), "connections": 1})
    return SmtpTransport(bounded, final_reply_timeout=FINAL_REPLY_TIMEOUT)


def backoff(attempts: int) -> timedelta:
    """The wait before try number `attempts + 1`: a minute, doubling, at most 4,000 s."""
    return timedelta(seconds=min(FIRST_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


class Mailer:
    """The worker that sends what the pages queued (`start` it, `wake` it, `stop` it)."""

    def __init__(
        self,
        config: Config,
        env: jinja2.Environment,
        store: Store,
        link: Callable[[str], str],
        transport_factory: Callable[[], Transport],
        clock: Callable[[], datetime],
    ) -> None:
        self.config, self.env, self.store = config, env, store
        self.link = link  # the confirm link of a sign-up request id
        self.transport_factory = transport_factory
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="confirmations", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self, wait: float = 5.0) -> None:
        """Stop after the email in hand (a hung relay is not waited for past `wait`)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(wait)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_once()
                pause = self._pause()
            except Exception:  # a store or template failure must not end the worker
                log.exception("confirmation worker: a round failed; trying again later")
                pause = IDLE_POLL
            self._wake.wait(pause)

    def _pause(self) -> float:
        due = self.store.mail_queue.next_due()
        if due is None:
            return IDLE_POLL
        return max(0.0, min((due - self.clock()).total_seconds(), IDLE_POLL))

    # -- one round ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Send every confirmation that is due now; return how many went out."""
        self.store.signups.forget_old()  # requests nobody confirmed go, whatever else happens
        sent = 0
        while not self._stop.is_set():
            items = self.store.mail_queue.claim(LEASE, BATCH)
            if not items:
                break
            for item in items:
                sent += self._send(item)
        return sent

    def _send(self, item: QueuedMail) -> int:
        queue = self.store.mail_queue
        lifetime = timedelta(hours=self.config.web.confirm_max_age_hours)
        if self.clock() - item.created_at > lifetime:
            log.warning(
                "confirmation to %s given up after %d tries: %s",
                item.email,
                item.attempts - 1,
                item.last_error,
            )
            queue.done(item)
            return 0
        if self.store.signups.get(item.ref) is None:
            queue.done(item)  # confirmed (or forgotten) since it was queued: nothing to ask
            return 0
        result = send_confirmation(
            self.config,
            self.env,
            self.transport_factory,
            item.email,
            self.link(item.ref),
            hours=self.config.web.confirm_max_age_hours,
            date=self.clock(),
        )
        if result.status in ("retry", "unknown"):
            delay = backoff(item.attempts)
            log.info("confirmation to %s: try again in %d s", item.email, delay.total_seconds())
            queue.defer(item, delay, result.detail)
            return 0
        queue.done(item)  # sent, or refused for good (logged by send_confirmation)
        return 1 if result.ok else 0
