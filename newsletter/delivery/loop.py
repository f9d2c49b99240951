"""Drive every SMTP connection of a send from one thread (a `selectors` loop).

With a thread per connection, each socket call and each SQLite mark lets go of the GIL and
takes it back; with four threads on a busy machine each of those becomes a hand-over between
threads (two futex calls, two context switches), and they, not the work, were most of a
message's cost. Here one thread keeps the connections' sockets non-blocking and serves whichever
is ready, so nothing is handed over. Each connection takes the steps of `smtp._pipelined`, and
a reply, a lost connection or a timeout becomes the same `SendResult` at the same stage, which
`send._Run` records as it does for a thread. A message's mark is committed before its connection
takes the next row: the crash bound is unchanged.

Used when the relay offers PIPELINING over plain connections and no rate limit is set (a relay
on this host or a private network: `SmtpTransport.loop_connections`); else each connection keeps
its thread.
"""

from __future__ import annotations

import contextlib
import logging
import math
import selectors
import smtplib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from newsletter.delivery.replies import classify, reply_line
from newsletter.delivery.transport import ConnectionLost, SendResult, dot_stuff
from newsletter.errors import MessageError, TransportError

if TYPE_CHECKING:
    from newsletter.delivery.send import _Run
    from newsletter.delivery.smtp import SmtpTransport
    from newsletter.delivery.work import Item

log = logging.getLogger(__name__)

_LOST = "Connection unexpectedly closed"  # smtplib's words, so that both paths read the same
_READ = selectors.EVENT_READ
_BOTH = selectors.EVENT_READ | selectors.EVENT_WRITE


class _Lost(Exception):
    """The connection ended (closed, reset or timed out)."""


class _Session:
    """One connection, and the message on it: the envelope, then the data, then the reply."""

    def __init__(self, conn: smtplib.SMTP) -> None:
        self.attach(conn)
        self.item: Item | None = None

    def attach(self, conn: smtplib.SMTP) -> None:
        """Take `conn` (greeted, EHLO done) as this session's connection."""
        sock = conn.sock
        assert sock is not None
        self.conn, self.sock = conn, sock
        self.timeout = sock.gettimeout() or 60.0  # the command timeout, per wait
        sock.setblocking(False)
        self.inbox = self.outbox = b""
        self.lines: list[bytes] = []  # the lines of a multi-line reply so far
        self.stage = "idle"  # idle | envelope | data | rset | closed
        self.awaiting = ""  # the command the next reply answers: MAIL, RCPT, DATA
        self.refused: tuple[str, int, bytes] | None = None
        self.result: SendResult | None = None  # a refusal, recorded once RSET is answered
        self.wire: Sequence[bytes] = ()
        self.mid: str | None = None
        self.fresh = False  # opened for this message after the one before was lost
        self.written = False  # all the data went out: from then on the message may arrive
        self.deadline = math.inf

    def send(self, data: bytes) -> None:
        self.outbox += data
        self.flush()

    def flush(self) -> None:
        while self.outbox:
            try:
                n = self.sock.send(self.outbox)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                raise _Lost(f"{_LOST}: {e}") from e
            self.outbox = self.outbox[n:]
            self.deadline = time.monotonic() + self.timeout

    def replies(self) -> list[tuple[int, bytes]]:
        """Read what arrived; the complete replies in it (code, text as smtplib gives it)."""
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError as e:
            raise _Lost(f"{_LOST}: {e}") from e
        if not data:
            raise _Lost(_LOST)
        self.inbox += data
        self.deadline = time.monotonic() + self.timeout
        out = []
        while b"\n" in self.inbox:
            line, self.inbox = self.inbox.split(b"\n", 1)
            self.lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] == b"-":
                continue
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
            out.append((code, b"\n".join(self.lines)))
            self.lines = []
        return out


class LoopSender:
    """Send the rows of `run` over the given connections, from the calling thread."""

    def __init__(self, run: _Run, transport: SmtpTransport, conns: list[smtplib.SMTP]) -> None:
        self.run, self.transport = run, transport
        self.final = transport.final_reply_timeout
        self.selector = selectors.DefaultSelector()
        self.sessions = [_Session(c) for c in conns]
        for s in self.sessions:
            self.selector.register(s.sock, _READ, s)
        self.finished = False  # no row left to take

    def send_all(self) -> None:
        """Send until no row is left or the run stops (a failure of the store or the render
        stops it once the other connections' messages are recorded: `_guarded`)."""
        try:
            while True:
                wait = self._guarded(self._start_idle)
                wait = math.inf if wait is None else wait
                busy = [s for s in self.sessions if s.item is not None]
                if not busy and (self.finished or self.run.halt.is_set()):
                    break
                due = min((s.deadline for s in busy), default=math.inf)
                timeout = max(0.0, min(due - time.monotonic(), wait, 0.5))
                for key, events in self.selector.select(timeout):
                    if events & selectors.EVENT_WRITE:
                        self._guarded(self._writable, key.data)
                    if events & selectors.EVENT_READ:
                        self._guarded(self._readable, key.data)
                now = time.monotonic()
                for s in busy:
                    if s.stage not in ("idle", "closed") and s.deadline <= now:
                        self._guarded(self._lost, s, f"{_LOST}: timed out")
        finally:
            self._hand_back()

    def _guarded(self, step: Callable[..., float | None], *args: Any) -> float | None:
        """Run one step; a failure of the store or the render stops the run (no new message),
        and the messages in flight on the other connections are still recorded."""
        try:
            return step(*args)
        except Exception as e:
            self.run.fail(e)
            for s in self.sessions:  # the one that failed: its state is unknown, let it go
                if s.item is not None and s.stage not in ("envelope", "data", "rset"):
                    s.item = None
            return None

    # -- taking rows --------------------------------------------------------------------------

    def _start_idle(self) -> float:
        """Give each free connection its next row; return how long until one may be ready."""
        run = self.run
        assert run.work is not None and run.claims is not None
        for s in self.sessions:
            while s.item is None and s.stage in ("idle", "closed"):
                if self.finished or run.halt.is_set():
                    return math.inf
                got = run.work.poll()
                if got is None:
                    self.finished = True
                    return math.inf
                if isinstance(got, float):
                    return got
                if not run.claims.holding():  # its lease may run out: another may send it
                    run.work.done(None)
                    run._lost()
                    return math.inf
                self._start(s, got)
        return math.inf

    def _start(self, s: _Session, item: Item, *, fresh: bool = False) -> None:
        run = self.run
        try:
            mid, message = run.message(item)
            envelope = b"MAIL FROM:%s\r\nRCPT TO:%s\r\nDATA\r\n" % (
                _address(run.sender, "MAIL"),
                _address(item.email, "RCPT"),
            )
        except (MessageError, ValueError) as e:  # no message, or an address no command carries
            self._done(s, item, SendResult("fail", str(e)), None)
            return
        if s.stage == "closed" and not self._reconnect(s, item):
            return
        s.item, s.mid, s.fresh, s.written, s.refused = item, mid, fresh, False, None
        s.wire = message.wire if message.wire is not None else (dot_stuff(message.data()),)
        s.stage, s.awaiting = "envelope", "MAIL"
        self._send(s, envelope)

    def _reconnect(self, s: _Session, item: Item) -> bool:
        """A new connection in place of a closed one; False when none could be made."""
        try:
            conn = self.transport.connect()
        except ConnectionLost as e:
            self._done(s, item, SendResult("retry", f"connect: {e}"), None)
            return False
        except TransportError as e:
            assert self.run.work is not None
            s.item = None
            self.run.transport_failed(item.email, e)
            self.run.work.done(None)
            return False
        s.attach(conn)
        self.selector.register(s.sock, _READ, s)
        return True

    # -- the conversation ---------------------------------------------------------------------

    def _send(self, s: _Session, data: bytes) -> None:
        try:
            s.send(data)
        except _Lost as e:
            self._lost(s, str(e))
            return
        if s.outbox:  # the rest goes out as the socket takes it
            self.selector.modify(s.sock, _BOTH, s)
        elif s.stage == "data":
            self._data_written(s)

    def _writable(self, s: _Session) -> None:
        if s.stage == "closed":
            return
        try:
            s.flush()
        except _Lost as e:
            self._lost(s, str(e))
            return
        if not s.outbox:
            self.selector.modify(s.sock, _READ, s)
            if s.stage == "data":
                self._data_written(s)

    def _data_written(self, s: _Session) -> None:
        # RFC 5321 4.5.3.2.6: the reply to the end of the data may take 10 minutes
        s.written = True
        s.deadline = time.monotonic() + max(s.timeout, self.final)

    def _readable(self, s: _Session) -> None:
        if s.stage == "closed":
            return
        try:
            replies = s.replies()
        except _Lost as e:
            self._lost(s, str(e))
            return
        conn = s.conn
        for code, text in replies:
            if s.conn is not conn or s.stage == "closed":
                break  # the rest came on a connection already given up
            if s.stage == "rset":
                self._reset(s)
            elif s.stage == "envelope":
                self._envelope_reply(s, code, text)
            elif s.stage == "data":
                self._answered(s, s.refused or ("DATA", code, text))
            # else: nothing was awaited (a server speaking out of turn): ignored

    def _envelope_reply(self, s: _Session, code: int, text: bytes) -> None:
        """MAIL, RCPT and DATA went out together; their replies come in order."""
        if s.awaiting == "MAIL":
            s.refused = None if code == 250 else ("MAIL", code, text)
            s.awaiting = "RCPT"
        elif s.awaiting == "RCPT":
            if s.refused is None and code not in (250, 251):
                s.refused = ("RCPT", code, text)
            s.awaiting = "DATA"
        elif code == 354:
            # With MAIL or RCPT refused the server should have refused DATA too; if it asks
            # for data anyway, end the data at once, empty, and report the refusal.
            wire = s.wire if s.refused is None else ()
            end = b".\r\n" if not wire or wire[-1].endswith(b"\r\n") else b"\r\n.\r\n"
            s.stage = "data"
            self._send(s, b"".join((*wire, end)))
            return
        else:
            self._answered(s, s.refused or ("DATA", code, text))
            return
        if code == 421:  # a server that is closing answers nothing more
            stage = "MAIL" if s.awaiting == "RCPT" else "RCPT"
            self._answered(s, s.refused or (stage, code, text))

    def _answered(self, s: _Session, answer: tuple[str, int, bytes]) -> None:
        """The transaction's outcome, as `SmtpTransport._transaction` makes it."""
        stage, code, text = answer
        item = s.item
        assert item is not None
        if stage == "DATA" and code == 250:
            self._done(s, item, SendResult("sent", reply_line(code, text), code), s.mid)
            return
        result = classify(stage, code, text)
        if code == 421:  # the server is closing this connection
            self._close(s)
            if not s.fresh and result.detail.startswith("MAIL:"):
                # Postfix's "421 timeout exceeded" to a connection idle too long: nothing was
                # sent, so at once again on a fresh connection
                log.debug("%s: idle connection timed out (%s); reconnecting", self._where, result)
                self._start(s, item, fresh=True)
            else:
                self._done(s, item, result, None)
            return
        # ready for the next message; the outcome is recorded once RSET is answered (a lost
        # RSET makes it a 421, as in `SmtpTransport._transaction`)
        s.result = result
        s.stage, s.deadline = "rset", time.monotonic() + s.timeout
        self._send(s, b"RSET\r\n")

    def _reset(self, s: _Session) -> None:
        """RSET was answered: record the transaction's outcome."""
        item, result = s.item, s.result
        assert item is not None and result is not None
        s.result = None
        self._done(s, item, result, None)

    def _lost(self, s: _Session, why: str) -> None:
        """The connection failed. Before MAIL was answered nothing was sent: an idle connection
        the server closed, so once again on a fresh one. After all the data: it may have
        arrived."""
        item, stage, awaiting, refused = s.item, s.stage, s.awaiting, s.result
        self._close(s)
        if item is None:
            return
        if stage == "rset" and refused is not None:  # the refusal stands; the connection goes
            s.result = None
            result = SendResult(refused.status, refused.detail, 421)
            if not s.fresh and result.detail.startswith("MAIL:"):
                log.debug("%s: connection lost after %s; reconnecting", self._where, result)
                self._start(s, item, fresh=True)
            else:
                self._done(s, item, result, None)
        elif stage == "envelope" and awaiting == "MAIL":
            if not s.fresh:
                log.debug("%s: idle connection was closed; reconnecting", self._where)
                self._start(s, item, fresh=True)
            else:
                self._done(s, item, SendResult("retry", "connection lost twice before MAIL"), None)
        elif stage == "data" and s.written:
            result = SendResult("unknown", f"no reply after the message was sent ({why})")
            self._done(s, item, result, None)
        else:
            self._done(s, item, SendResult("retry", f"connection lost: {why}"), None)

    @property
    def _where(self) -> str:
        return self.transport.where

    # -- outcomes -----------------------------------------------------------------------------

    def _done(self, s: _Session, item: Item, result: SendResult, mid: str | None) -> None:
        """Record the outcome (the mark committed before this connection takes its next row)."""
        run = self.run
        assert run.work is not None
        s.item = None
        if s.stage != "closed":
            s.stage, s.deadline = "idle", math.inf
        again = None
        try:
            again = run._record(item, result, mid)
        finally:
            run.work.done(again)

    def _close(self, s: _Session) -> None:
        if s.stage == "closed":
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(s.sock)
        s.stage, s.deadline, s.outbox = "closed", math.inf, b""
        self.transport.drop(s.conn)

    def _hand_back(self) -> None:
        """Give the connections that are ready for a command back to the transport (which says
        QUIT when it closes); close the others."""
        for s in self.sessions:
            if s.stage == "closed":
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(s.sock)
            if s.stage == "idle" and not s.outbox:
                s.sock.settimeout(s.timeout)
                self.transport.give_back(s.conn)
            else:
                s.stage = "closed"
                self.transport.drop(s.conn)
        self.selector.close()


def _address(address: str, command: str) -> bytes:
    """The address as MAIL FROM / RCPT TO carries it (smtplib's quoting); ValueError if it
    cannot be carried (a line break, a character that is not ASCII)."""
    quoted = smtplib.quoteaddr(address)
    if "\r" in quoted or "\n" in quoted:
        raise ValueError(f"{command}: command and arguments contain prohibited newline characters")
    try:
        return quoted.encode("ascii")
    except UnicodeEncodeError as e:
        raise ValueError(f"{command}: {e}") from e
