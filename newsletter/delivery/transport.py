"""Where messages go: the interface every transport shares (`outbox.py`, `smtp.py`).

A transport is opened once per run, then `send` (bytes) or `send_message` (an `Outgoing`, the
pieces delivery builds) is called for each message, from up to `concurrency` threads at once.
Neither raises for a refused message: each returns a `SendResult` that tells delivery what to do
(mark sent, retry later, or fail the recipient).
It raises `TransportError` only when the transport cannot work at all (bad login, TLS failure):
every further message would fail the same way.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

log = logging.getLogger(__name__)

# sent: accepted. retry: try again later (4xx, dropped connection, timeout).
# bounce: the recipient does not exist (5xx for the address): fail and suppress it.
# fail: refused for good (5xx for the message): fail without suppressing the address.
# unknown: the body went out but its final reply never came; it may have arrived
Status = Literal["sent", "retry", "bounce", "fail", "unknown"]
_LINE_DOT = re.compile(rb"(?m)^\.")
_DOT_AFTER_LF = re.compile(rb"\n\.")  # a regex search is 3x faster than `in` on a 130 KB message


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one message."""

    status: Status
    detail: str = ""  # the server's reply or the error, one line (never a secret)
    code: int | None = None  # the SMTP reply code, when there was one

    @property
    def ok(self) -> bool:
        return self.status == "sent"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message ready to send, as byte pieces that join into one CRLF message.

    `wire` is the same message the way SMTP DATA carries it, every line that starts with "."
    doubled (RFC 5321 4.5.2), made from a variant prepared once; None when nobody prepared it
    (a transport that needs it stuffs `data()` itself). When no line starts with ".", `wire` is
    `pieces` itself.
    """

    pieces: Sequence[bytes]
    wire: Sequence[bytes] | None = None

    def data(self) -> bytes:
        """Return the message as one bytes object."""
        return b"".join(self.pieces)


def dot_stuff(data: bytes) -> bytes:
    """Double the "." that starts a line (SMTP DATA's transparency); `data` starts a line.

    Returns `data` itself when no line starts with ".", the usual case: nothing is copied.
    """
    if data.startswith(b".") or _DOT_AFTER_LF.search(data):
        return _LINE_DOT.sub(b"..", data)
    return data


class ConnectionLost(Exception):
    """The connection failed at a point where the message may not have been sent."""


class Transport:
    """The interface: `open()`, `send(envelope_from, rcpt, data) -> SendResult`, `close()`.

    `data` is a complete RFC 5322 message with CRLF line ends. Use as a context manager.
    """

    name = "transport"
    concurrency = 1  # how many threads may call `send` at once

    def open(self) -> None:
        """Prepare to send (connect, create folders); raise `TransportError` if impossible."""

    def send(self, envelope_from: str, rcpt: str, data: bytes) -> SendResult:
        raise NotImplementedError

    def send_message(self, envelope_from: str, rcpt: str, message: Outgoing) -> SendResult:
        """Send a message delivery prepared; a transport that can use its pieces overrides this."""
        return self.send(envelope_from, rcpt, message.data())

    def loop_connections(self) -> list[Any] | None:
        """Open connections for one thread to serve all at once (`newsletter.delivery.loop`);
        None (here, and whenever that cannot be done): a thread per connection sends instead."""
        return None

    def close(self) -> None:
        """Release connections and files."""

    def __enter__(self) -> Transport:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
