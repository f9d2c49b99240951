"""Send an issue to its audience through the ledger, so a crash or a rerun resumes.

The whole audience is written to the ledger first (`plan.enqueue`); then every row still pending
is sent, and marked sent (one commit) as soon as the server accepts it, before the sending
thread takes its next message. A rerun therefore re-sends at most one message per sending thread
(one per connection) that was in flight when a run died.
Each variant (topic selection x format) arrives rendered and is serialised once; a subscriber's
message is the variant's bytes with their links filled in (see `newsletter.delivery.message`).

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.audience.tokens import SecretKeys, TokenMaker
from newsletter.delivery.breaker import BREAKER_RECIPIENTS, CircuitBreaker
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Format, Links, MessageTemplate, build_template
from newsletter.delivery.plan import Batch, Selection, variant_label
from newsletter.delivery.transport import Outgoing, SendResult
from newsletter.delivery.work import Item, RetryPolicy, Work
from newsletter.errors import MessageError, TransportError

if TYPE_CHECKING:
    from newsletter.config.stages import MailSettings
    from newsletter.delivery.transport import Transport
    from newsletter.models import Issue, RenderedEmail, Subscriber
    from newsletter.store.ledger import SentMarks
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


__all__ = ["BREAKER_RECIPIENTS", "DeliveryReport", "RetryPolicy", "deliver"]


@dataclass
class DeliveryReport:
    """What one `deliver` call did; `stopped_early` means the caller should exit non-zero."""

    sent: int = 0
    failed: int = 0  # refused for good (a permanent refusal, or given up after max_attempts)
    suppressed: int = 0  # hard bounces, now on the suppression list
    skipped: int = 0
    stopped_early: bool = False
    already_sent: int = 0  # sent by an earlier run of the same issue
    failed_before: int = 0  # refused for good in an earlier run (not tried again)
    pending: int = 0  # rows left for a rerun (the `to_retry` ones and any never tried)
    to_retry: int = 0  # pending rows tried and refused for now: a later run tries them again
    variants: int = 0  # variants rendered in this run
    seconds: float = 0.0
    reason: str = ""  # why the run stopped early

    def summary(self) -> str:
        """Return the one-line count the CLI prints."""
        line = f"{self.sent} sent, {self.failed} failed, {self.suppressed} suppressed, "
        line += f"{self.skipped} skipped"
        line += f", {self.already_sent} sent before" if self.already_sent else ""
        line += f", {self.failed_before} failed before" if self.failed_before else ""
        line += f", {self.to_retry} to retry" if self.to_retry else ""
        untried = self.pending - self.to_retry
        line += f", {untried} pending" if untried > 0 else ""
        line += f" in {self.seconds:.1f} s"
        return line + (f"; stopped early: {self.reason}" if self.stopped_early else "")


class _Run:
    """One delivery: variants, the ledger and the counts, shared by the sending threads."""

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
        self.keys, self.variants, self.retry, self.progress = keys, variants, retry, progress
        self.tokens = TokenMaker(keys)  # built once: a message's two links sign with it
        self.ids: Mapping[str, str] = {}  # address -> the opaque id its links carry
        self.report = DeliveryReport(variants=len(variants))
        self.signer = DkimSigner.from_settings(config.dkim)
        self.sender = config.sender.address
        self.base = config.base_url
        self.templates: dict[tuple[Selection, str], MessageTemplate] = {}
        self.ledger_lock = threading.Lock()  # one writer: SQLite would make the others spin
        self.seq = itertools.count()
        self.consecutive_errors = self.done = self.total = 0
        self.deadline = time.monotonic() + config.retry_minutes * 60  # no in-run retry after it
        self.breaker = CircuitBreaker(0)  # sized once the rows to send are counted
        self.work: Work | None = None
        self.marks: SentMarks | None = None  # open while the threads send
        self.error: BaseException | None = None

    # -- variants -----------------------------------------------------------------------------

    def template(self, sel: Selection, fmt: Format) -> MessageTemplate:
        key = (sel, fmt)
        if key not in self.templates:
            rendered = self.variants.get(sel)
            if rendered is None:  # `Batch.selections` lists every selection a pending row needs
                raise KeyError(f"variant {variant_label(sel, fmt)} was not rendered")
            self.templates[key] = build_template(rendered, self.config, self.issue.id, fmt=fmt)
            log.debug("variant %s: %d bytes", variant_label(sel, fmt), self.templates[key].size)
        return self.templates[key]

    # -- rows ---------------------------------------------------------------------------------

    def items(self, audience: Mapping[str, tuple[Subscriber, Selection]]) -> Iterator[Item]:
        """Yield the rows to send; mark rows that have nothing to send as skipped on the way."""
        for row in self.store.ledger.pending_rows(self.issue.id):
            entry = audience.get(row.email)
            if entry is None:
                self._skip(row.email, "no longer in the audience (unsubscribed or removed)")
                continue
            sub, sel = entry
            if sel == () and not self.config.send_empty:
                self._skip(row.email, "none of the chosen topics has papers this week")
                continue
            if row.attempts >= self.config.max_attempts:  # the limit was lowered since
                self._give_up(row.email, row.attempts, row.last_error or "")
                continue
            template = self.template(sel, "text" if sub.format == "text" else "html")
            yield Item(0.0, next(self.seq), sub.email, sub.name, template, row.attempts)

    def _skip(self, email: str, reason: str) -> None:
        with self.ledger_lock:
            self.store.ledger.mark_skipped(self.issue.id, email, reason)
            self.report.skipped += 1
            self._advance()

    def _give_up(self, email: str, attempts: int, error: str) -> None:
        with self.ledger_lock:
            self._give_up_now(email, attempts, error, tried=False)

    def _advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    # -- sending ------------------------------------------------------------------------------

    def message(self, item: Item) -> tuple[str, Outgoing]:
        email, rid = item.email, self.ids[item.email]
        links = Links(
            f"{self.base}/unsubscribe?token={self.tokens.make('unsubscribe', rid)}",
            f"{self.base}/preferences?token={self.tokens.make('preferences', rid)}",
        )
        mid = item.template.message_id(email)
        out = item.template.outgoing(email, item.name, links, mid)
        if self.signer is not None:
            signed = self.signer.sign_pieces(item.template, out.pieces)  # adds no "." line
            return mid, Outgoing((signed,), (signed,) if out.wire is out.pieces else None)
        return mid, out

    def worker(self) -> None:
        assert self.work is not None
        try:
            while (item := self.work.take()) is not None:
                again = self._send(item)
                self.work.done(again)
        except BaseException as e:  # a store or render failure: stop everyone, report it
            self.error = self.error or e
            self.work.stop()

    def _send(self, item: Item) -> Item | None:
        try:
            mid, data = self.message(item)
        except MessageError as e:
            return self._record(item, SendResult("fail", str(e)), None)
        try:
            result = self.transport.send_message(self.sender, item.email, data)
        except TransportError as e:
            # Nothing will go through, and not for this recipient's sake: keep the row pending
            # without counting a try, and end the run.
            with self.ledger_lock:
                self.store.ledger.note_error(self.issue.id, item.email, str(e))
            self._stop(str(e))
            return None
        return self._record(item, result, mid)

    def _record(self, item: Item, result: SendResult, mid: str | None) -> Item | None:
        """Write a send's outcome to the ledger; return the item again if it should be retried."""
        email = item.email
        again: Item | None = None
        stop = ""
        with self.ledger_lock:
            if result.status == "sent":
                assert self.marks is not None
                self.marks.mark(email, mid)
                self.report.sent += 1
                self.consecutive_errors = 0
                self._advance()
                return None
            if result.status in ("retry", "unknown"):
                again = self._deferred(item, result)
                # a deferral of this recipient is no sign of trouble; a refusing or vanishing
                # server is (Postfix judges a destination dead by its sessions, not its 4xx)
                counts = result.code in (None, 421) or result.detail.startswith("MAIL:")
            elif result.status == "fail" and result.code is not None:
                # a server's refusal that is not about the mailbox: the breaker decides
                stop = self.breaker.hold(email, result) or ""
                log.info("%s: %s (held: a refusal about our side)", email, result.detail)
                self._advance()
                counts = False  # the breaker counts these
            else:  # a hard bounce, or a message that could not be made or sent at all
                self.store.ledger.mark_failed(self.issue.id, email, result.detail, permanent=True)
                self.report.failed += 1
                if result.status == "bounce":
                    self.store.suppress(email, "bounced", result.detail)
                    self.report.suppressed += 1
                log.warning("%s: %s (%s)", email, result.detail, result.status)
                self._advance()
                counts = True
            if counts:
                self.consecutive_errors += 1
                limit = self.config.max_consecutive_errors
                if self.consecutive_errors >= limit:
                    stop = f"{limit} errors in a row, the last: {result.detail}"
        if stop:  # outside the ledger lock: the row feeder takes the locks the other way round
            self._stop(stop, loud=not self.breaker.tripped)
        return again

    def _deferred(self, item: Item, result: SendResult) -> Item | None:
        """Count a failed try; retry it in this run, leave it to a later one, or give it up."""
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
            self._give_up_now(item.email, attempts, detail)
            return None
        self.store.ledger.mark_failed(self.issue.id, item.email, detail, permanent=False)
        delay = self.retry.delay(item.tries)
        due = time.monotonic() + delay
        if again_now and due <= self.deadline:
            item.due = due
            log.info("%s: %s; retry in %.1f s", item.email, detail, delay)
            return item
        log.warning(
            "%s: %s; left for a later run (%d of %d attempts)",
            item.email,
            detail,
            attempts,
            self.config.max_attempts,
        )
        self._advance()
        return None

    def _give_up_now(self, email: str, attempts: int, detail: str, *, tried: bool = True) -> None:
        error = f"gave up after {attempts} attempts: {detail}"
        self.store.ledger.mark_failed(self.issue.id, email, error, permanent=True, tried=tried)
        self.report.failed += 1
        log.warning("%s: %s", email, error)
        self._advance()

    def settle(self) -> None:
        """End the rows the breaker held: pending again (it tripped) or failed for good."""
        keep, fail = self.breaker.settle(stopped=self.report.stopped_early)
        with self.ledger_lock:
            for email, detail in keep:
                self.store.ledger.note_error(self.issue.id, email, detail)
            for email, detail in fail:
                self.store.ledger.mark_failed(self.issue.id, email, detail, permanent=True)
                self.report.failed += 1
                log.warning("%s: %s (refused, not suppressed)", email, detail)

    def _stop(self, reason: str, *, loud: bool = True) -> None:
        with self.ledger_lock:
            first = not self.report.stopped_early
            self.report.stopped_early = True
            self.report.reason = self.report.reason or reason
        if first:  # the breaker's line is the run's counts line: said once, not twice
            (log.error if loud else log.info)("delivery of %s stops: %s", self.issue.id, reason)
        if self.work is not None:
            self.work.stop()


def _wait(threads: list[threading.Thread], run: _Run, stop: threading.Event | None) -> None:
    """Join the sending threads; pass a stop request on to them."""
    for t in threads:
        while t.is_alive():
            if stop is not None and stop.is_set() and not run.report.stopped_early:
                run._stop("stop requested")
            t.join(0.1 if stop is not None else None)


def deliver(
    issue: Issue,
    batch: Batch,
    variants: Mapping[Selection, RenderedEmail],
    store: Store,
    transport: Transport,
    config: MailSettings,
    *,
    progress: Progress | None = None,
    keys: SecretKeys | None = None,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Send `issue` to every subscriber of `batch` not yet sent it; return the counts.

    `variants` holds the rendered email of every selection in `batch.selections`. `transport`
    is opened here (when there is anything to send) and closed. Setting `stop` ends the run
    after the messages in flight (`stopped_early`, rows kept).
    """
    started = time.perf_counter()
    if keys is None:
        keys = SecretKeys.from_env()
    by_email = batch.audience
    new = batch.new
    run = _Run(issue, config, store, transport, keys, variants, retry or RetryPolicy(), progress)
    before = store.ledger.counts(issue.id)
    run.total = before["pending"]
    run.breaker = CircuitBreaker(run.total)
    run.report.already_sent = before["sent"]
    run.report.failed_before = before["failed"]
    log.info(
        "deliver %s: %d in the audience (%d new in the ledger), %d to send, %d sent before",
        issue.id,
        len(by_email),
        new,
        run.total,
        before["sent"],
    )
    if run.total:  # links carry an opaque id, never the address
        run.ids = store.recipients.ids(by_email)
    run.work = Work(run.items(by_email))
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
                with store.ledger.sent_marks(issue.id) as run.marks:  # the ledger's fast path
                    threads = [
                        threading.Thread(target=run.worker, name=f"send-{i}", daemon=True)
                        for i in range(max(1, transport.concurrency))
                    ]
                    for t in threads:
                        t.start()
                    try:
                        _wait(threads, run, stop)
                    except BaseException:  # Ctrl-C: finish and record what is in flight; stop
                        run._stop("interrupted")
                        for t in threads:
                            t.join()
                        raise
            finally:
                transport.close()
    if run.error is not None:
        raise run.error
    run.settle()
    after = store.ledger.counts(issue.id)
    run.report.pending = after["pending"]
    run.report.to_retry = store.ledger.to_retry(issue.id) if after["pending"] else 0
    run.report.seconds = time.perf_counter() - started
    log.info("deliver %s: %s", issue.id, run.report.summary())
    return run.report
