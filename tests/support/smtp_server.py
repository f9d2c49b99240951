"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), with faults a test can inject.

`SmtpServer` runs aiosmtpd in its own thread on a free port and records every accepted message.
Faults: scripted replies per recipient for RCPT and DATA (`4xx` then accept, or `5xx`), one
reply to every RCPT (a relay refusing our sender), a size limit (a relay refusing our size),
greylisting (`450 4.2.0` to an address until some seconds after its first try), a connection
drop without a reply on every Nth DATA or Nth MAIL or after the body for chosen recipients, a
delay before each DATA or MAIL reply, and a hung relay that takes the whole message and never
answers it (`hang`).
The server offers PIPELINING (RFC 2920), as Postfix does; `smtp_server(pipelining=False)` does not.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    connection: int  # which connection carried it (numbered in order of connecting)


@dataclass
class Faults:
    rcpt: dict[str, list[str]] = field(default_factory=dict)  # address -> replies to give first
    data: dict[str, list[str]] = field(default_factory=dict)
    mail: list[str] = field(default_factory=list)  # replies to MAIL FROM, in order
    drop_every: int | None = None  # close the connection instead of answering every Nth DATA
    drop_mail_every: int | None = None  # the same for every Nth MAIL (before any message data)
    delay: float = 0.0  # seconds before answering DATA
    mail_delay: float = 0.0  # seconds before answering MAIL (a server that stalls)
    rcpt_all: str | None = None  # the reply to every RCPT (after any scripted one)
    max_size: int | None = None  # refuse a message larger than this many bytes after its body
    size_reply: str = "552 5.2.3 Message size exceeds fixed maximum message size"
    greylist: float | None = None  # refuse an address until this many seconds after its first try
    drop_after_body: dict[str, int] = field(default_factory=dict)  # address -> times to cut
    hang: bool = False  # take the message, then never answer (until the server stops)


class Handler:
    """aiosmtpd handler that records messages and plays the scripted faults."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.received: list[Received] = []
        self.dropped = 0
        self.hung = 0  # messages taken and never answered
        self.connections = 0
        self.data_commands = 0
        self.mail_commands = 0
        self.pipelining = True  # offered in the EHLO reply
        self.lock = threading.Lock()
        self.auth: tuple[str, str] | None = None  # (username, password) the server accepts
        self.auth_attempts: list[str] = []
        self.rcpt_commands: Counter[str] = Counter()  # RCPT commands per address
        self._first_seen: dict[str, float] = {}  # greylisting: when an address was first tried

    def _pop(self, script: dict[str, list[str]], address: str) -> str | None:
        with self.lock:
            replies = script.get(address)
            return replies.pop(0) if replies else None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if getattr(session, "number", None) is None:
            with self.lock:
                self.connections += 1
                session.number = self.connections
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")  # before the last line ("250 HELP")
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.mail_commands += 1
            every = self.faults.drop_mail_every
            drop = bool(every) and self.mail_commands % every == 0
            self.dropped += drop
            reply = self.faults.mail.pop(0) if self.faults.mail and not drop else None
        if drop:
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        if self.faults.mail_delay:
            await asyncio.sleep(self.faults.mail_delay)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.rcpt_commands[address] += 1
        reply = self._pop(self.faults.rcpt, address) or self.faults.rcpt_all or self._grey(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _grey(self, address: str) -> str | None:
        """Greylisting as postgrey does it: refuse an address until its delay has passed."""
        if self.faults.greylist is None:
            return None
        with self.lock:
            first = self._first_seen.setdefault(address, time.monotonic())
        if time.monotonic() - first >= self.faults.greylist:
            return None
        return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted, see postgrey"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.faults.hang:
            with self.lock:
                self.hung += 1
            await asyncio.Event().wait()  # stopping the server cancels this
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        with self.lock:
            self.data_commands += 1
            drop = bool(self.faults.drop_every) and self.data_commands % self.faults.drop_every == 0
            cuts = self.faults.drop_after_body.get(envelope.rcpt_tos[0], 0)
            if cuts and not drop:
                self.faults.drop_after_body[envelope.rcpt_tos[0]] = cuts - 1
                drop = True
        if drop:
            with self.lock:
                self.dropped += 1
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        rcpt = envelope.rcpt_tos[0]
        reply = self._pop(self.faults.data, rcpt)
        if reply:
            return reply
        limit = self.faults.max_size
        if limit is not None and len(envelope.original_content or b"") > limit:
            return self.faults.size_reply
        with self.lock:
            for to in envelope.rcpt_tos:
                self.received.append(
                    Received(envelope.mail_from, to, envelope.content, session.number or 0)
                )
        return "250 2.0.0 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            password = auth_data.password.decode()
            self.auth_attempts.append(login)
            if self.auth == (login, password):
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    # -- what tests look at --------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.rcpt for r in self.received)

    def messages_for(self, rcpt: str) -> list[bytes]:
        with self.lock:
            return [r.data for r in self.received if r.rcpt == rcpt]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Controller(Controller):
    def _trigger_server(self) -> None:
        # aiosmtpd connects once to check the server is up; with implicit TLS it must speak
        # TLS, and our test certificate is self-signed, so skip verification of that probe.
        if self.ssl_context is None:
            return super()._trigger_server()
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (
            socket.create_connection((self.hostname, self.port), 1.0) as raw,
            context.wrap_socket(raw) as sock,
        ):
            sock.recv(1024)


@dataclass
class SmtpServer:
    host: str
    port: int
    handler: Handler


@contextmanager
def smtp_server(*, pipelining: bool = True, **smtp_kwargs: Any) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1 for the duration of the block."""
    handler = Handler()
    handler.pipelining = pipelining
    if smtp_kwargs.pop("authenticate", False):
        smtp_kwargs["authenticator"] = handler.authenticate
    ssl_context = smtp_kwargs.pop("ssl_context", None)
    port = free_port()
    controller = _Controller(
        handler, hostname="127.0.0.1", port=port, ssl_context=ssl_context, **smtp_kwargs
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, handler)
    finally:
        controller.stop()


def scripted_start(conn: socket.socket) -> None:
    """A scripted server's first steps on a connection: greet, answer EHLO (offering
    PIPELINING), and read the client's pipelined MAIL, RCPT and DATA."""
    conn.sendall(b"220 test ESMTP\r\n")
    conn.recv(1024)  # EHLO
    conn.sendall(b"250-test\r\n250 PIPELINING\r\n")
    conn.recv(1024)  # MAIL, RCPT, DATA


def scripted_data(conn: socket.socket) -> bytes:
    """Ask for the data and read it to its end mark (or to the connection's end)."""
    conn.sendall(b"250 OK\r\n250 OK\r\n354 go ahead\r\n")
    data = b""
    while not data.endswith(b"\r\n.\r\n"):
        data += conn.recv(65536) or b"\r\n.\r\n"
    return data
