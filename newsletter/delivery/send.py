"""Send an issue to its audience through the ledger, so a crash, a rerun or another sender resumes.

The whole audience is written to the ledger first (`plan.enqueue`); then the pending rows are
taken in batches (`Store.claims`: on PostgreSQL each batch is claimed with a lease, so several
senders on several hosts share the send and never take the same live row) and sent, by one
thread serving every connection when the transport offers that (`delivery.loop`: a relay with
PIPELINING over plain connections), else by a thread per connection. Each row is marked (one
commit) as soon as the server answers, before its connection takes the next message. A crash
therefore re-sends at most one message per connection: the one in flight.
Each variant (topic selection x format) the audience needs is rendered before the first message
(any other when a row first needs it) and serialised once; a subscriber's message is the
variant's bytes with their links filled in (see `newsletter.delivery.message`).

What a refusal does (`replies.classify` decides which it is):
- deferred (4xx, greylisting, a full mailbox, a connection lost, a final reply that never came):
  tried again in this run with backoff for up to `retry_minutes`, then left pending for a later
  run; every try counts, and a row is given up (failed) after `max_attempts` tries in all;
- the recipient's mailbox does not exist: failed and suppressed (a hard bounce);
- about our side or the message: held by the circuit breaker (`breaker.py`), which stops the
  run if the same refusal repeats for several recipients, else failed without suppressing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, cast

from newsletter.audience.tokens import SecretKeys, TokenMaker
from newsletter.delivery.breaker import BREAKER_RECIPIENTS, CircuitBreaker
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.loop import LoopSender
from newsletter.delivery.message import Format, Links, MessageTemplate, build_template
from newsletter.delivery.plan import SKIP, Enqueued, Selection, parse_label
from newsletter.delivery.report import DeliveryReport
from newsletter.delivery.transport import Outgoing, SendResult
from newsletter.delivery.work import Item, RetryPolicy, Work, join
from newsletter.errors import MessageError, TransportError

if TYPE_CHECKING:
    from newsletter.config.stages import MailSettings
    from newsletter.delivery.smtp import SmtpTransport
    from newsletter.delivery.transport import Transport
    from newsletter.models import Issue, RenderedEmail
    from newsletter.store.claims import Claimed, Claims
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
BATCH = 200  # rows taken at a time: a sender that dies holds at most this many besides its own
POLL_SECONDS = 1.0  # how often a sender with nothing left looks again at rows others hold

__all__ = ["BREAKER_RECIPIENTS", "DeliveryReport", "RetryPolicy", "deliver"]


class _Run:
    """One delivery: variants, the rows and the counts, shared by the sending threads."""

    def __init__(
        self,
        issue: Issue,
        config: MailSettings,
        store: Store,
        transport: Transport,
        keys: SecretKeys,
        variants: Mapping[Selection, RenderedEmail],
        retry: RetryPolicy,
        progress: Progress | None,
    ) -> None:
        self.issue, self.config, self.store, self.transport = issue, config, store, transport
        self.variants, self.retry, self.progress = variants, retry, progress
        self.tokens = TokenMaker(keys)  # built once: a message's two links sign with it
        self.report = DeliveryReport()
        self.signer = DkimSigner.from_settings(config.dkim)
        self.sender = config.sender.address
        self.base = config.base_url
        self.templates: dict[tuple[Selection, str], MessageTemplate] = {}
        self.labels: dict[str, tuple[Selection, str] | None] = {}  # ledger label -> variant
        self.lock = threading.Lock()  # the counts, the breaker and the progress; never the store
        self.seq = itertools.count()
        self.consecutive_errors = self.done = self.total = 0
        self.deadline = time.monotonic() + config.retry_minutes * 60  # no in-run retry after it
        self.breaker = CircuitBreaker(0)  # sized once the rows to send are counted
        self.halt = threading.Event()  # set when the run stops
        self.work: Work | None = None
        self.claims: Claims | None = None  # open while the threads send
        self.error: BaseException | None = None

    # -- rows ---------------------------------------------------------------------------------

    def template(self, sel: Selection, fmt: Format) -> MessageTemplate:
        key = (sel, fmt)
        if key not in self.templates:  # one thread at a time fetches rows (see `Work`)
            rendered = self.variants[sel]  # rendered on first use
            self.templates[key] = build_template(rendered, self.config, self.issue.id, fmt=fmt)
        return self.templates[key]

    def next_batch(self, *, block: bool = True) -> list[Item] | None:
        """Take the next rows to send; wait while other senders hold the only ones left (or,
        with `block` false, return None: ask again later)."""
        assert self.claims is not None
        while not self.halt.is_set():
            if not self.claims.holding():
                self._lost()
                return []
            taken = self.claims.take(BATCH)
            if taken:
                items = [item for row in taken if (item := self._item(row)) is not None]
                if items:
                    return items
                continue
            wait = self.claims.held_elsewhere()
            if wait is None:
                return []
            if time.monotonic() >= self.deadline:
                log.info("other senders still hold rows of %s; leaving them", self.issue.id)
                return []
            if not block:
                return None
            self.halt.wait(min(max(wait, 0.1), POLL_SECONDS))
        return []

    def _item(self, row: Claimed) -> Item | None:
        """The row as an item to send; None for a row with nothing to send (marked here)."""
        if row.suppressed:
            self._skip(row.email, "suppressed (unsubscribed or bounced) since it was written")
            return None
        if row.variant == SKIP:
            self._skip(row.email, "none of the chosen topics has papers this week")
            return None
        variant = self.labels.get(row.variant)
        if variant is None:
            variant = self.labels[row.variant] = parse_label(self.issue, row.variant)
        if variant is None:  # written by another version of this program
            assert self.claims is not None
            self.claims.marks.pending(row.email, f"unknown variant {row.variant!r}", tried=False)
            return None
        if row.attempts >= self.config.max_attempts:  # the limit was lowered since
            self._give_up(row.email, row.attempts, row.last_error or "", tried=False)
            return None
        template = self.template(variant[0], "text" if variant[1] == "text" else "html")
        return Item(
            0.0, next(self.seq), row.email, row.name, template, row.attempts, row.recipient_id
        )

    def _skip(self, email: str, reason: str) -> None:
        assert self.claims is not None
        self.claims.marks.skipped(email, reason)
        with self.lock:
            self.report.skipped += 1
            self._advance()

    def _advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    # -- sending ------------------------------------------------------------------------------

    def message(self, item: Item) -> tuple[str, Outgoing]:
        rid = item.recipient_id
        links = Links(
            f"{self.base}/unsubscribe?token={self.tokens.make('unsubscribe', rid)}",
            f"{self.base}/preferences?token={self.tokens.make('preferences', rid)}",
        )
        mid = item.template.message_id(item.email)
        out = item.template.outgoing(item.email, item.name, links, mid)
        if self.signer is not None:
            signed = self.signer.sign_pieces(item.template, out.pieces)  # adds no "." line
            return mid, Outgoing((signed,), (signed,) if out.wire is out.pieces else None)
        return mid, out

    def worker(self) -> None:
        assert self.work is not None and self.claims is not None
        try:
            while (item := self.work.take()) is not None:
                if not self.claims.holding():  # its lease may run out: another may send it
                    self.work.done(None)
                    self._lost()
                    break
                again = self._send(item)
                self.work.done(again)
        except BaseException as e:  # a store or render failure: stop everyone, report it
            self.fail(e)

    def driver(self, sender: LoopSender) -> None:
        """Run one thread's loop over every connection (`delivery.loop`)."""
        try:
            sender.send_all()
        except BaseException as e:
            self.fail(e)

    def fail(self, error: BaseException) -> None:
        """A store or render failure: no new message; `deliver` raises the first one."""
        self.error = self.error or error
        self.halt.set()
        if self.work is not None:
            self.work.stop()

    def transport_failed(self, email: str, error: TransportError) -> None:
        """Nothing will go through, and not for this recipient's sake: keep the row pending
        without counting a try, and end the run."""
        assert self.claims is not None
        self.claims.marks.pending(email, str(error), tried=False)
        self._stop(str(error))

    def _send(self, item: Item) -> Item | None:
        try:
            mid, data = self.message(item)
        except MessageError as e:
            return self._record(item, SendResult("fail", str(e)), None)
        try:
            result = self.transport.send_message(self.sender, item.email, data)
        except TransportError as e:
            self.transport_failed(item.email, e)
            return None
        return self._record(item, result, mid)

    def _record(self, item: Item, result: SendResult, mid: str | None) -> Item | None:
        """Write a send's outcome to the ledger; return the item again if it should be retried."""
        assert self.claims is not None
        marks, email = self.claims.marks, item.email
        if result.status == "sent":
            marks.sent(email, mid)  # committed before this thread takes its next message
            with self.lock:
                self.report.sent += 1
                self.consecutive_errors = 0
                self._advance()
            return None
        again: Item | None = None
        stop = ""
        if result.status in ("retry", "unknown"):
            again = self._deferred(item, result)
            # a deferral of this recipient is no sign of trouble; a refusing or vanishing
            # server is (Postfix judges a destination dead by its sessions, not its 4xx)
            counts = result.code in (None, 421) or result.detail.startswith("MAIL:")
        elif result.status == "fail" and result.code is not None:
            # a server's refusal that is not about the mailbox: the breaker decides
            log.info("%s: %s (held: a refusal about our side)", email, result.detail)
            with self.lock:
                stop = self.breaker.hold(email, result) or ""
                self._advance()
            counts = False  # the breaker counts these
        else:  # a hard bounce, or a message that could not be made or sent at all
            marks.failed(email, result.detail)
            if result.status == "bounce":
                self.store.suppress(email, "bounced", result.detail)
            log.warning("%s: %s (%s)", email, result.detail, result.status)
            with self.lock:
                self.report.failed += 1
                self.report.suppressed += result.status == "bounce"
                self._advance()
            # a mailbox that does not exist says nothing of the server (an old list may hold
            # many); a message that cannot be made is likely the next one's fate too
            counts = result.status != "bounce"
        if counts:
            with self.lock:
                self.consecutive_errors += 1
                limit = self.config.max_consecutive_errors
                if self.consecutive_errors >= limit:
                    stop = f"{limit} errors in a row, the last: {result.detail}"
        if stop:
            self._stop(stop, loud=not self.breaker.tripped)
        return again

    def _deferred(self, item: Item, result: SendResult) -> Item | None:
        """Count a failed try; retry it in this run, leave it to a later one, or give it up."""
        assert self.claims is not None
        item.tries += 1
        attempts = item.attempts + item.tries
        detail, again_now = result.detail, True
        if result.status == "unknown":
            detail += "; it may have arrived"
            # one more copy in this run at most; another run may send it again (Postfix too
            # retries a message whose end went unanswered, RFC 1047): one duplicate per try
            again_now = not item.unanswered
            item.unanswered = True
        if attempts >= self.config.max_attempts:
            self._give_up(item.email, attempts, detail)
            return None
        delay = self.retry.delay(item.tries)
        now = time.monotonic()
        if again_now and now + delay <= self.deadline:
            self.claims.marks.pending(item.email, detail)
            item.due = now + delay
            log.info("%s: %s; retry in %.1f s", item.email, detail, delay)
            return item
        # not before this run's retries end (no copy sooner than this run would have sent one)
        self.claims.marks.later(item.email, detail, after=max(delay, self.deadline - now))
        log.warning(
            "%s: %s; left for a later run (%d of %d attempts)",
            item.email,
            detail,
            attempts,
            self.config.max_attempts,
        )
        with self.lock:
            self._advance()
        return None

    def _give_up(self, email: str, attempts: int, detail: str, *, tried: bool = True) -> None:
        assert self.claims is not None
        error = f"gave up after {attempts} attempts: {detail}"
        self.claims.marks.failed(email, error, tried=tried)
        log.warning("%s: %s", email, error)
        with self.lock:
            self.report.failed += 1
            self._advance()

    def settle(self) -> None:
        """End the rows the breaker held: pending again (it tripped) or failed for good."""
        assert self.claims is not None
        keep, fail = self.breaker.settle(stopped=self.report.stopped_early)
        for email, detail in keep:
            self.claims.marks.pending(email, detail, tried=False)
        for email, detail in fail:
            self.claims.marks.failed(email, detail)
            self.report.failed += 1
            log.warning("%s: %s (refused, not suppressed)", email, detail)

    def _lost(self) -> None:
        lease = self.config.lease_seconds
        self._stop(
            f"the state could not be reached to renew this sender's claim on its rows (lease "
            f"{lease:g} s); stopped so that another sender may take them"
        )

    def _stop(self, reason: str, *, loud: bool = True) -> None:
        with self.lock:
            first = not self.report.stopped_early
            self.report.stopped_early = True
            self.report.reason = self.report.reason or reason
        if first:  # the breaker's line is the run's counts line: said once, not twice
            (log.error if loud else log.info)("delivery of %s stops: %s", self.issue.id, reason)
        self.halt.set()
        if self.work is not None:
            self.work.stop()


def deliver(
    issue: Issue,
    variants: Mapping[Selection, RenderedEmail],
    store: Store,
    transport: Transport,
    config: MailSettings,
    *,
    enqueued: Enqueued | None = None,
    progress: Progress | None = None,
    keys: SecretKeys | None = None,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send `issue` to every pending row of its ledger (this sender's share); return the counts.

    `variants` gives the rendered email of a selection (rendering it then, if the mapping does):
    those of `enqueued.selections` before the first message, any other when a row needs it.
    `transport` is opened here (when there is anything to send) and closed. Setting `stop` ends
    the run after the messages in flight (`stopped_early`, rows kept).
    """
    if keys is None:
        keys = SecretKeys.from_env()
    run = _Run(issue, config, store, transport, keys, variants, retry or RetryPolicy(), progress)
    before = store.ledger.counts(issue.id)
    run.total = before["pending"]
    if run.total and enqueued is not None:
        for sel in enqueued.selections:  # before the first message (others when a row needs one)
            variants[sel]
    started = time.perf_counter()
    run.breaker = CircuitBreaker(run.total)
    run.report.already_sent = before["sent"]
    run.report.failed_before = before["failed"]
    run.report.skipped = enqueued.absent if enqueued is not None else 0
    log.info("deliver %s: %d to send, %d sent before", issue.id, run.total, run.report.already_sent)
    if progress is not None:
        progress(0, run.total)
    if run.total and stop is not None and stop.is_set():
        run._stop("stop requested")  # asked to stop before the first message: send none
    elif run.total:
        try:
            transport.open()
        except TransportError as e:
            run._stop(str(e))
        else:
            try:
                _send_all(run, store, transport, stop)
            finally:
                transport.close()
    if run.error is not None:
        raise run.error
    after = store.ledger.counts(issue.id)
    run.report.pending = after["pending"]
    run.report.to_retry = store.ledger.to_retry(issue.id) if after["pending"] else 0
    run.report.variants = len(variants)
    # the counts line's seconds: writing the audience into the ledger, then the delivery
    written = enqueued.seconds if enqueued is not None else 0.0
    run.report.seconds = written + time.perf_counter() - started
    log.info("deliver %s: %s", issue.id, run.report.summary())
    return run.report


def _loop_sender(run: _Run, transport: Transport) -> LoopSender | None:
    """One thread for every connection, when the transport offers its connections for that."""
    conns = transport.loop_connections()  # only `SmtpTransport` does
    return LoopSender(run, cast("SmtpTransport", transport), conns) if conns else None


def _send_all(run: _Run, store: Store, transport: Transport, stop: threading.Event | None) -> None:
    """Take and send rows from `transport.concurrency` threads until none is left."""
    run.claims = store.claims(run.issue.id, lease_seconds=run.config.lease_seconds)
    try:
        sender = _loop_sender(run, transport)
        # one thread for all connections never waits for rows other senders hold: `Work.poll`
        # asks for them again later, and the connections and retries go on meanwhile
        run.work = Work(partial(run.next_batch, block=False) if sender else run.next_batch)
        if sender is not None:  # one thread serves every connection (see `delivery.loop`)
            threads = [threading.Thread(target=run.driver, args=(sender,), name="send")]
        else:
            threads = [
                threading.Thread(target=run.worker, name=f"send-{i}", daemon=True)
                for i in range(max(1, transport.concurrency))
            ]
        for t in threads:
            t.start()
        try:
            join(threads, stop, lambda: run._stop("stop requested"))
        except BaseException:  # Ctrl-C: finish and record what is in flight; stop
            run._stop("interrupted")
            for t in threads:
                t.join()
            raise
        if run.error is None:
            run.settle()
    finally:
        run.claims.close()
