"""The SMTP transport: a pool of reused connections (stdlib smtplib), TLS, AUTH, a rate limit.

smtplib with one thread per connection is enough here: the work per message is a few short
commands and one large write, and the socket calls release the GIL while they wait. Each
connection is reused for many messages; one that the server drops is replaced on the next send.
When the server offers PIPELINING, MAIL, RCPT and DATA go out in one write and the body in a
second, so a message costs two round trips; the body arrives already dot-stuffed (`Outgoing.wire`).

Replies become a `SendResult` (`newsletter.delivery.replies.classify`): 4xx and lost connections
are `retry`, a 5xx saying the recipient's mailbox does not exist is `bounce`, any other 5xx (our
sender, the relay's policy, the message) is `fail`. The password comes from the environment
variable the config names and never appears in a log line or an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from newsletter.delivery.replies import classify, reply_line
from newsletter.delivery.transport import (
    ConnectionLost,
    Outgoing,
    SendResult,
    Transport,
    dot_stuff,
)
from newsletter.errors import TransportError

if TYPE_CHECKING:
    from newsletter.config import SmtpConfig

log = logging.getLogger(__name__)

_PLAIN_ADDR = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")


class RateLimit:
    """Space out sends to at most `rate` per second across all threads."""

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self.clock, self.sleep = clock, sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self.clock()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            self.sleep(at - now)


class SmtpTransport(Transport):
    """Send through an SMTP server over up to `connections` reused connections."""

    name = "smtp"

    def __init__(
        self,
        settings: SmtpConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        environ: dict[str, str] | None = None,
        final_reply_timeout: float | None = None,
    ) -> None:
        self.settings = settings
        # the wait for the reply to a message's end: RFC 5321's 10 minutes unless bounded lower
        self.final_reply_timeout = final_reply_timeout or FINAL_REPLY_TIMEOUT
        self.concurrency = settings.connections
        self.where = f"smtp {settings.host}:{settings.port}"
        self._context = ssl_context
        self._environ = environ
        self._idle: list[smtplib.SMTP] = []
        self._open_conns: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()
        self._rate = RateLimit(settings.rate_limit)
        self._password: str | None = None

    # -- connections ------------------------------------------------------------------------------

    def open(self) -> None:
        """Read the password and make the first connection, so a bad setup fails at once."""
        self._password = self._read_password()
        try:
            conn = self._connect()
        except ConnectionLost as e:
            raise TransportError(f"{self.where}: cannot connect ({e}); check delivery.smtp") from e
        self._release(conn)

    def _read_password(self) -> str | None:
        s = self.settings
        if not s.username:
            return None
        environ = os.environ if self._environ is None else self._environ
        password = environ.get(s.password_env, "")
        if not password:
            raise TransportError(
                f"{self.where}: delivery.smtp.username is set but ${s.password_env} is empty; "
                f"export {s.password_env} with the SMTP password"
            )
        return password

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            # The system's CAs (SSL_CERT_FILE / SSL_CERT_DIR are honoured), hostname checked.
            self._context = ssl.create_default_context()
        return self._context

    def _connect(self) -> smtplib.SMTP:
        """Open, secure and log in one connection; raise TransportError or ConnectionLost."""
        s = self.settings
        try:
            if s.security == "tls":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._ssl_context()
                )
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        except ssl.SSLError as e:
            raise TransportError(f"{self.where}: TLS handshake failed ({e})") from e
        except (OSError, smtplib.SMTPException) as e:
            raise ConnectionLost(str(e) or type(e).__name__) from e
        try:
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise TransportError(
                        f"{self.where}: the server offers no STARTTLS; "
                        "set delivery.smtp.security to tls (port 465) or none"
                    )
                code, reply = conn.starttls(context=self._ssl_context())
                if code != 220:
                    raise TransportError(
                        f"{self.where}: STARTTLS refused ({reply_line(code, reply)})"
                    )
                conn.ehlo()
            if s.username:
                self._login(conn)
        except TransportError:
            _quietly_close(conn)
            raise
        except ssl.SSLError as e:
            _quietly_close(conn)
            raise TransportError(f"{self.where}: TLS handshake failed ({e})") from e
        except OSError as e:  # smtplib's errors are OSErrors too
            _quietly_close(conn)
            raise ConnectionLost(str(e) or type(e).__name__) from e
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                # Commands are small writes each awaiting a reply: never hold them back (Nagle).
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._open_conns.add(conn)
        log.debug("%s: connected (%d open)", self.where, len(self._open_conns))
        return conn

    def _login(self, conn: smtplib.SMTP) -> None:
        s = self.settings
        if not conn.has_extn("auth"):
            hint = " before TLS; use security: starttls or tls" if s.security == "none" else ""
            raise TransportError(f"{self.where}: the server offers no AUTH{hint}")
        if s.security == "none" and s.host not in ("localhost", "127.0.0.1", "::1"):
            log.warning("%s: logging in without TLS; the password crosses the network", self.where)
        try:
            conn.login(s.username or "", self._password or "")
        except smtplib.SMTPAuthenticationError as e:
            # The reply is the server's; smtplib never puts the password into it.
            raise TransportError(
                f"{self.where}: login as {s.username!r} refused "
                f"({reply_line(e.smtp_code, e.smtp_error)}); check delivery.smtp.username and "
                f"${s.password_env}"
            ) from None
        except smtplib.SMTPException as e:
            raise TransportError(
                f"{self.where}: login as {s.username!r} failed ({type(e).__name__})"
            ) from None

    def loop_connections(self) -> list[smtplib.SMTP] | None:
        """`concurrency` open connections for one thread to drive (`newsletter.delivery.loop`)
        when that thread can do all of it: plain connections, PIPELINING offered, no rate limit.
        None otherwise, or when a connection cannot be made now (each thread then connects and
        reports as before)."""
        s = self.settings
        if s.security != "none" or s.rate_limit:
            return None
        conns: list[smtplib.SMTP] = []
        try:
            while len(conns) < self.concurrency:
                conns.append(self._acquire())
                if "pipelining" not in conns[-1].esmtp_features:
                    break
            else:
                return conns
        except (ConnectionLost, TransportError):
            pass
        for conn in conns:
            self._release(conn)
        return None

    def connect(self) -> smtplib.SMTP:
        """A new connection (for `newsletter.delivery.loop`); ConnectionLost or TransportError."""
        return self._connect()

    def give_back(self, conn: smtplib.SMTP) -> None:
        """Return a connection taken by `loop_connections` or `connect`, ready for a command."""
        self._release(conn)

    def drop(self, conn: smtplib.SMTP) -> None:
        """Close a connection taken by `loop_connections` or `connect` that is no longer usable."""
        self._discard(conn)

    def _acquire(self) -> smtplib.SMTP:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _release(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._idle.append(conn)

    def _discard(self, conn: smtplib.SMTP) -> None:
        with self._lock:
            self._open_conns.discard(conn)
        _quietly_close(conn)

    def close(self) -> None:
        with self._lock:
            conns, self._idle, self._open_conns = list(self._open_conns), [], set()
        for conn in conns:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                _quietly_close(conn)

    # -- sending ----------------------------------------------------------------------------------

    def send(self, envelope_from: str, rcpt: str, data: bytes) -> SendResult:
        """Send one message to one recipient on a pooled connection."""
        return self._send(envelope_from, rcpt, (dot_stuff(data),))

    def send_message(self, envelope_from: str, rcpt: str, message: Outgoing) -> SendResult:
        """Send a prepared message; its wire form goes out as it is, with no per-message pass."""
        wire = message.wire if message.wire is not None else (dot_stuff(message.data()),)
        return self._send(envelope_from, rcpt, wire)

    def _send(self, envelope_from: str, rcpt: str, wire: Sequence[bytes]) -> SendResult:
        self._rate.wait()
        for fresh in (False, True):
            try:
                conn = self._acquire() if not fresh else self._connect()
            except ConnectionLost as e:
                return SendResult("retry", f"connect: {e}")
            try:
                result = self._transaction(conn, envelope_from, rcpt, wire)
            except _ReplyLost as e:
                self._discard(conn)
                return SendResult("unknown", f"no reply after the message was sent ({e})")
            except ConnectionLost as e:
                self._discard(conn)
                if e.args and e.args[0] == "idle":
                    # Dropped while idle, before anything was sent: one immediate retry on a
                    # fresh connection is safe and not an error.
                    log.debug("%s: idle connection was closed; reconnecting", self.where)
                    continue
                return SendResult("retry", f"connection lost: {e.__cause__ or e}")
            if result.code == 421 and not fresh and result.detail.startswith("MAIL:"):
                # Postfix says "421 timeout exceeded" to an idle connection before closing it:
                # nothing was sent, so try again at once on a fresh connection
                self._discard(conn)
                log.debug("%s: idle connection timed out (%s); reconnecting", self.where, result)
                continue
            if result.code == 421:  # the server is closing this connection
                self._discard(conn)
            else:
                self._release(conn)
            return result
        return SendResult("retry", "connection lost twice before MAIL")

    def _transaction(
        self, conn: smtplib.SMTP, envelope_from: str, rcpt: str, wire: Sequence[bytes]
    ) -> SendResult:
        final = self.final_reply_timeout
        try:
            if "pipelining" in conn.esmtp_features and _plain(envelope_from, rcpt):
                stage, code, reply = _pipelined(conn, envelope_from, rcpt, wire, final)
            else:
                stage, code, reply = _lockstep(conn, envelope_from, rcpt, wire, final)
        except ValueError as e:  # an address smtplib cannot send: refused for good
            result = SendResult("fail", str(e))
            code = 0  # MAIL may have been accepted already: reset below, as for any refusal
        else:
            if stage == "DATA" and code == 250:
                return SendResult("sent", reply_line(code, reply), code)
            result = classify(stage, code, reply)
        if code != 421:
            try:
                conn.rset()  # ready for the next message
            except OSError:
                return SendResult(result.status, result.detail, 421)  # drop this connection
        return result


Answer = tuple[str, int, bytes]  # the stage that answered last or refused, its code and text


def _pipelined(
    conn: smtplib.SMTP, envelope_from: str, rcpt: str, wire: Sequence[bytes], final: float
) -> Answer:
    """Send MAIL, RCPT and DATA in one write (RFC 2920), then the body: two round trips."""
    stage = "MAIL"
    try:
        conn.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % _ascii(envelope_from, rcpt))
        code, reply = conn.getreply()
        stage = "RCPT"
        refused = None if code == 250 else ("MAIL", code, reply)
        if code != 421:  # a server that is closing answers nothing more
            code, reply = conn.getreply()
            refused = refused or (None if code in (250, 251) else ("RCPT", code, reply))
        if code != 421:
            stage = "DATA"
            code, reply = conn.getreply()
            if code == 354:
                # With MAIL or RCPT refused the server should have refused DATA too; if it
                # asks for data anyway, end the data at once, empty, and report the refusal.
                code, reply = _body(conn, wire if refused is None else (), final)
    except OSError as e:  # smtplib's errors (disconnects included) are OSErrors
        # Before MAIL was answered nothing was sent: an idle connection the server closed.
        raise ConnectionLost("idle" if stage == "MAIL" else stage) from e
    return refused or (stage, code, reply)


def _lockstep(
    conn: smtplib.SMTP, envelope_from: str, rcpt: str, wire: Sequence[bytes], final: float
) -> Answer:
    """Send MAIL, RCPT, DATA and the body, each after the reply to the one before."""
    stage = "MAIL"
    try:
        code, reply = _command(conn, "mail", "FROM:", envelope_from)
        if code == 250:
            stage = "RCPT"
            code, reply = _command(conn, "rcpt", "TO:", rcpt)
            if code in (250, 251):
                stage = "DATA"
                conn.putcmd("data")
                code, reply = conn.getreply()
                if code == 354:
                    code, reply = _body(conn, wire, final)
    except OSError as e:
        raise ConnectionLost("idle" if stage == "MAIL" else stage) from e
    except ValueError as e:  # smtplib refuses a line break in an address: name the command
        raise ValueError(f"{stage}: {e}") from e
    return stage, code, reply


def _plain(envelope_from: str, rcpt: str) -> bool:
    return bool(_PLAIN_ADDR.fullmatch(envelope_from) and _PLAIN_ADDR.fullmatch(rcpt))


def _ascii(envelope_from: str, rcpt: str) -> tuple[bytes, bytes]:
    return envelope_from.encode("ascii"), rcpt.encode("ascii")


# RFC 5321 4.5.3.2.6: a client waits 10 minutes for the reply to the end of the data, since a
# server may scan the whole message before it answers; giving up sooner invites a duplicate.
FINAL_REPLY_TIMEOUT = 600.0


class _ReplyLost(Exception):
    """The message and its end mark went out, but no reply came back: it may have arrived."""


def _body(conn: smtplib.SMTP, wire: Sequence[bytes], final: float) -> tuple[int, bytes]:
    """Send the dot-stuffed message and its end mark in one write; return the server's reply."""
    end = b".\r\n" if not wire or wire[-1].endswith(b"\r\n") else b"\r\n.\r\n"
    conn.send(b"".join((*wire, end)))
    sock = conn.sock
    before = sock.gettimeout() if sock is not None else None
    try:
        if sock is not None and before is not None:
            sock.settimeout(max(before, final))
        return conn.getreply()
    except OSError as e:
        raise _ReplyLost(str(e) or type(e).__name__) from e
    finally:
        if sock is not None and conn.sock is sock:
            sock.settimeout(before)


def _command(conn: smtplib.SMTP, verb: str, prefix: str, address: str) -> tuple[int, bytes]:
    """Send MAIL FROM / RCPT TO; a plain address skips smtplib's slow address parser."""
    if _PLAIN_ADDR.fullmatch(address):
        conn.putcmd(verb, f"{prefix}<{address}>")
        return conn.getreply()
    return conn.mail(address) if verb == "mail" else conn.rcpt(address)


def _quietly_close(conn: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        conn.close()


def check_smtp(settings: SmtpConfig, *, ssl_context: ssl.SSLContext | None = None) -> list[str]:
    """Connect, secure, log in and quit; return what failed, one line each (empty when fine)."""
    transport = SmtpTransport(settings, ssl_context=ssl_context)
    try:
        transport.open()
    except TransportError as e:
        return [str(e)]
    finally:
        transport.close()
    return []
