"""The rows of one send as the sending threads take them: fresh rows, then retries when due.

Fresh rows come in batches from the ledger (`source`), fetched by one thread at a time outside
the queue's lock, so the others go on with what they hold or with retries meanwhile. A deferred
row (greylisting, a 4xx, a connection lost) comes back into the queue with a due time; the
threads send fresh rows meanwhile and wait only when nothing else is left, so a deferral holds
up no one (Postfix's active and deferred queues, within one run).
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from newsletter.delivery.message import MessageTemplate

LATER = 0.5  # seconds before asking a source that had no rows now (others hold them) again


class _Fill:
    """What `Work._next` returns to the caller that is to fetch the next batch."""


_FILL = _Fill()


@dataclass(frozen=True)
class RetryPolicy:
    """How soon a deferred message is tried again within one run: `backoff` seconds, doubling
    each time up to `max_backoff`. How long a run keeps retrying is `delivery.retry_minutes`,
    how many tries a row gets across runs `delivery.max_attempts`."""

    backoff: float = 60.0
    max_backoff: float = 480.0

    def delay(self, tries: int) -> float:
        """Seconds to wait after the `tries`-th failed try of this run (1 for the first)."""
        return float(min(self.backoff * 2 ** (tries - 1), self.max_backoff))


@dataclass(order=True)
class Item:
    """One row on its way: who, which variant, and how its tries went in this run."""

    due: float
    seq: int
    email: str = field(compare=False)
    name: str | None = field(compare=False)
    template: MessageTemplate = field(compare=False)
    attempts: int = field(default=0, compare=False)  # tries recorded by earlier runs
    recipient_id: str = field(default="", compare=False)  # the opaque id its links carry
    tries: int = field(default=0, compare=False)  # failed tries in this run
    unanswered: bool = field(default=False, compare=False)  # sent once without a final reply


class Work:
    """Hand out rows to the sending threads: retries that are due first, then fresh rows.

    `source()` returns the next batch of fresh rows, an empty list when there are no more (or,
    for `poll`, None: none now, ask again later).
    """

    def __init__(self, source: Callable[[], list[Item] | None]) -> None:
        self._source = source
        self._fresh: deque[Item] = deque()
        self._exhausted = False
        self._ask_after = 0.0  # a source that said "not now" is asked again from then on
        self._filling = False  # a thread is fetching the next batch
        self._retries: list[Item] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self.stopped = False

    def take(self) -> Item | None:
        """The next row to send; None when there is none left (or the run stops)."""
        while True:
            with self._cond:
                while isinstance(got := self._next(), float):
                    self._cond.wait(None if got == math.inf else got)
            if not isinstance(got, _Fill):
                return got
            self._fill()

    def poll(self) -> Item | float | None:
        """For one thread serving many connections (`delivery.loop`): the next row without
        waiting; else the seconds until one may be ready (a retry due, or `inf` while rows are
        in flight); None when there is none left (or the run stops)."""
        while True:
            with self._cond:
                got = self._next()
            if not isinstance(got, _Fill):
                return got
            if not self._fill():
                return LATER

    def _next(self) -> Item | float | None | _Fill:
        """Under the lock: a row to send now (counted in flight); `_FILL` when this caller is to
        fetch the next batch; None when all is done; else the seconds to wait (`inf`: until a row
        in flight ends or a batch arrives)."""
        if self.stopped:
            return None
        now = time.monotonic()
        if self._retries and self._retries[0].due <= now:
            self._in_flight += 1
            return heapq.heappop(self._retries)
        if self._fresh:
            self._in_flight += 1
            return self._fresh.popleft()
        if not self._exhausted and not self._filling and now >= self._ask_after:
            self._filling = True
            return _FILL  # fetched without the lock, so the others go on meanwhile
        if self._exhausted and not self._retries and not self._in_flight:
            return None
        wait = self._retries[0].due - now if self._retries else math.inf
        if not self._exhausted and not self._filling:  # the source said "not now" just before
            wait = min(wait, self._ask_after - now)
        return wait

    def _fill(self) -> bool:
        """Fetch the next batch; False when the source said "not now" (None: ask again later)."""
        batch: list[Item] | None = []
        try:
            batch = self._source()
        finally:
            with self._cond:
                self._filling = False
                if batch:
                    self._fresh.extend(batch)
                elif batch is None:
                    self._ask_after = time.monotonic() + LATER
                else:
                    self._exhausted = True  # a source that failed has nothing more either
                self._cond.notify_all()
        return batch is not None

    def done(self, retry: Item | None = None) -> None:
        """A thread finished its row; `retry` puts it back to be sent again when due."""
        with self._cond:
            self._in_flight -= 1
            if retry is not None and not self.stopped:
                heapq.heappush(self._retries, retry)
                self._cond.notify_all()  # a waiting thread may have to wait less long now
            elif self._exhausted and not self._in_flight:
                self._cond.notify_all()  # the last row: the waiting threads can end

    def stop(self) -> None:
        with self._cond:
            self.stopped = True
            self._cond.notify_all()


def join(
    threads: list[threading.Thread], stop: threading.Event | None, on_stop: Callable[[], None]
) -> None:
    """Join the threads; once `stop` is set, call `on_stop` (to pass the request on to them)."""
    asked = False
    for t in threads:
        while t.is_alive():
            if stop is not None and stop.is_set() and not asked:
                on_stop()
                asked = True
            t.join(0.1 if stop is not None else None)
