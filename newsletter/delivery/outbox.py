"""The default transport: a local Maildir folder that any mail client can open (no server)."""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path

from newsletter.delivery.transport import SendResult, Transport
from newsletter.errors import TransportError


class OutboxTransport(Transport):
    """Deliver into a local Maildir folder (`new/`) that any mail client can open."""

    name = "outbox"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._box: mailbox.Maildir | None = None
        self._lock = threading.Lock()  # Maildir's unique-name counter is not thread-safe

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)  # Maildir makes only the last
            self._box = mailbox.Maildir(self.path, create=True)
        except OSError as e:
            raise TransportError(
                f"outbox {self.path}: cannot create the Maildir ({e}); "
                "set `delivery.outbox` to a writable folder"
            ) from e

    def send(self, envelope_from: str, rcpt: str, data: bytes) -> SendResult:
        if self._box is None:
            self.open()
        assert self._box is not None
        # What a local delivery agent adds, so a mail client shows who the copy was for.
        trace = f"Return-Path: <{envelope_from}>\r\nDelivered-To: {rcpt}\r\n".encode()
        try:
            with self._lock:
                key = self._box.add((trace + data).replace(b"\r\n", b"\n"))
        except OSError as e:
            raise TransportError(f"outbox {self.path}: cannot write a message ({e})") from e
        return SendResult("sent", f"outbox {key}")

    def close(self) -> None:
        self._box = None
