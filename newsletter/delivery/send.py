"""Send an issue to its audience through the ledger, so a crash or a rerun resumes.

The whole audience is written to the ledger first (`plan.enqueue`); then every row still pending
is sent, and
marked sent (one commit) as soon as the server accepts it, before the sending thread takes its
next message. A rerun therefore re-sends at most one message per sending thread (one per
connection) that was in flight when a run died.
Each variant (topic selection x format) arrives rendered and is serialised once; a subscriber's
message is the variant's bytes with their links filled in (see `newsletter.delivery.message`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.audience.tokens import SecretKeys, make_token
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Format, Links, MessageTemplate, build_template
from newsletter.delivery.plan import Batch, Selection, variant_label
from newsletter.delivery.transport import Outgoing, SendResult
from newsletter.errors import MessageError, TransportError

if TYPE_CHECKING:
    from newsletter.config.stages import MailSettings
    from newsletter.delivery.transport import Transport
    from newsletter.models import Issue, RenderedEmail, Subscriber
    from newsletter.store.ledger import SentMarks
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how late a temporarily refused message is tried again within one run."""

    attempts: int = 5  # tries per message in one run; a rerun starts again
    backoff: float = 2.0  # seconds before the first retry, doubling each time
    max_backoff: float = 120.0


@dataclass
class DeliveryReport:
    """What one `deliver` call did; `stopped_early` means the caller should exit non-zero."""

    sent: int = 0
    failed: int = 0  # refused for good, or still refused after the retries (left pending)
    suppressed: int = 0  # hard bounces, now on the suppression list
    skipped: int = 0
    stopped_early: bool = False
    already_sent: int = 0  # sent by an earlier run of the same issue
    failed_before: int = 0  # refused for good in an earlier run (not tried again)
    pending: int = 0  # rows left for a rerun
    variants: int = 0  # variants rendered in this run
    seconds: float = 0.0
    reason: str = ""  # why the run stopped early

    def summary(self) -> str:
        """Return the one-line count the CLI prints."""
        line = f"{self.sent} sent, {self.failed} failed, {self.suppressed} suppressed, "
        line += f"{self.skipped} skipped"
        line += f", {self.already_sent} sent before" if self.already_sent else ""
        line += f", {self.failed_before} failed before" if self.failed_before else ""
        line += f", {self.pending} pending" if self.pending else ""
        line += f" in {self.seconds:.1f} s"
        return line + (f"; stopped early: {self.reason}" if self.stopped_early else "")


@dataclass(order=True)
class _Item:
    due: float
    seq: int
    email: str = field(compare=False)
    name: str | None = field(compare=False)
    template: MessageTemplate = field(compare=False)
    tries: int = field(default=0, compare=False)
    unanswered: bool = field(default=False, compare=False)  # sent once without a final reply


class _Work:
    """Hand out rows to the sending threads: fresh rows, then retries when they are due."""

    def __init__(self, items: Iterator[_Item]) -> None:
        self._items = items
        self._retries: list[_Item] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self.stopped = False

    def take(self) -> _Item | None:
        with self._cond:
            while not self.stopped:
                now = time.monotonic()
                if self._retries and self._retries[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._retries)
                item = next(self._items, None)
                if item is not None:
                    self._in_flight += 1
                    return item
                if not self._retries and not self._in_flight:
                    return None
                wait = self._retries[0].due - now if self._retries else None
                self._cond.wait(wait)
            return None

    def done(self, retry: _Item | None = None) -> None:
        with self._cond:
            self._in_flight -= 1
            if retry is not None and not self.stopped:
                heapq.heappush(self._retries, retry)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()


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
        self.report = DeliveryReport(variants=len(variants))
        self.signer = DkimSigner.from_settings(config.dkim)
        self.sender = config.sender.address
        self.base = config.base_url
        self.templates: dict[tuple[Selection, str], MessageTemplate] = {}
        self.ledger_lock = threading.Lock()  # one writer: SQLite would make the others spin
        self.seq = itertools.count()
        self.consecutive_errors = self.done = self.total = 0
        self.work: _Work | None = None
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

    def items(self, audience: Mapping[str, tuple[Subscriber, Selection]]) -> Iterator[_Item]:
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
            template = self.template(sel, "text" if sub.format == "text" else "html")
            yield _Item(0.0, next(self.seq), sub.email, sub.name, template)

    def _skip(self, email: str, reason: str) -> None:
        with self.ledger_lock:
            self.store.ledger.mark_skipped(self.issue.id, email, reason)
            self.report.skipped += 1
            self._advance()

    def _advance(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total)

    # -- sending ------------------------------------------------------------------------------

    def message(self, item: _Item) -> tuple[str, Outgoing]:
        email = item.email
        links = Links(
            f"{self.base}/unsubscribe?token={make_token('unsubscribe', email, self.keys)}",
            f"{self.base}/preferences?token={make_token('preferences', email, self.keys)}",
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

    def _send(self, item: _Item) -> _Item | None:
        try:
            mid, data = self.message(item)
        except MessageError as e:
            return self._record(item, SendResult("fail", str(e)), None)
        try:
            result = self.transport.send_message(self.sender, item.email, data)
        except TransportError as e:
            # Nothing will go through: keep the row pending and end the run.
            with self.ledger_lock:
                self.store.ledger.mark_failed(self.issue.id, item.email, str(e), permanent=False)
            self._stop(str(e))
            return None
        return self._record(item, result, mid)

    def _record(self, item: _Item, result: SendResult, mid: str | None) -> _Item | None:
        """Write a send's outcome to the ledger; return the item again if it should be retried."""
        issue_id, email = self.issue.id, item.email
        again: _Item | None = None
        stop = ""
        with self.ledger_lock:
            if result.status == "sent":
                assert self.marks is not None
                self.marks.mark(email, mid)
                self.report.sent += 1
                self.consecutive_errors = 0
                self._advance()
                return None
            self.consecutive_errors += 1
            if result.status == "unknown" and item.unanswered:
                # a second copy without a reply: it may have arrived twice; stop here
                result = SendResult("fail", f"{result.detail}, twice; it may have arrived")
            elif result.status == "unknown":
                item.unanswered = True  # one more copy, at most one possible duplicate
            if result.status in ("retry", "unknown"):
                item.tries += 1
                self.store.ledger.mark_failed(issue_id, email, result.detail, permanent=False)
                if item.tries < self.retry.attempts:
                    delay = min(self.retry.backoff * 2 ** (item.tries - 1), self.retry.max_backoff)
                    item.due = time.monotonic() + delay
                    again = item
                    log.info("%s: %s; retry in %.1f s", email, result.detail, delay)
                else:
                    self.report.failed += 1
                    self._advance()
                    log.warning("%s: %s; left pending for a rerun", email, result.detail)
            else:
                self.store.ledger.mark_failed(issue_id, email, result.detail, permanent=True)
                self.report.failed += 1
                if result.status == "bounce":
                    self.store.suppress(email, "bounced", result.detail)
                    self.report.suppressed += 1
                log.warning("%s: %s (%s)", email, result.detail, result.status)
                self._advance()
            limit = self.config.max_consecutive_errors
            if self.consecutive_errors >= limit:
                stop = f"{limit} errors in a row, the last: {result.detail}"
        if stop:  # outside the ledger lock: the row feeder takes the locks the other way round
            self._stop(stop)
        return again

    def _stop(self, reason: str) -> None:
        with self.ledger_lock:
            first = not self.report.stopped_early
            self.report.stopped_early = True
            self.report.reason = self.report.reason or reason
        if first:
            log.error("delivery of %s stops: %s", self.issue.id, reason)
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
    run.work = _Work(run.items(by_email))
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
    after = store.ledger.counts(issue.id)
    run.report.pending = after["pending"]
    run.report.seconds = time.perf_counter() - started
    log.info("deliver %s: %s", issue.id, run.report.summary())
    return run.report
