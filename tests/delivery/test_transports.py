from __future__ import annotations

import email
import logging
import mailbox
import socket
import ssl
import threading
from email import policy
from pathlib import Path

import pytest

from newsletter.config import Config, SmtpConfig, parse_config
from newsletter.delivery import make_transport
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.smtp import RateLimit, SmtpTransport, check_smtp
from newsletter.delivery.transport import Outgoing
from newsletter.errors import TransportError
from tests.support.smtp_server import SmtpServer, scripted_data, scripted_start, smtp_server

PASSWORD = "s3cret-Passw0rd-that-must-not-leak"
SENDER = "digest@example.org"


def message(rcpt: str, body: str = "Hello.\r\n") -> bytes:
    return (
        f"From: Digest <{SENDER}>\r\nTo: {rcpt}\r\nSubject: test\r\n"
        f"Message-ID: <{rcpt}@example.org>\r\n\r\n{body}"
    ).encode()


def smtp_settings(port: int, **kw: object) -> SmtpConfig:
    values = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5}
    values.update(kw)
    return SmtpConfig(**values)  # type: ignore[arg-type]


def server_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    return context


def client_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


def config_for(port: int, extra: str = "", base_dir: Path | None = None) -> Config:
    text = (
        "delivery:\n  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, security: starttls, username: ann, "
        "timeout: 5}\n" + extra
    )
    return parse_config(text, "config.yaml", base_dir)


# -- outbox ---------------------------------------------------------------------------------------


def test_outbox_writes_parseable_messages_into_maildir_new(tmp_path: Path) -> None:
    config = parse_config("delivery: {outbox: mail/out}\n", "config.yaml", tmp_path)
    transport = make_transport(config.transport_settings())
    assert isinstance(transport, OutboxTransport)
    with transport:
        for rcpt in ("a@example.com", "b@example.com"):
            assert transport.send(SENDER, rcpt, message(rcpt, ".dot line\r\nü\r\n")).ok
    new = sorted((tmp_path / "mail" / "out" / "new").iterdir())
    assert len(new) == 2
    box = mailbox.Maildir(tmp_path / "mail" / "out", create=False)
    tos = set()
    for key in box.iterkeys():
        raw = box.get_bytes(key)
        assert b"\r\n" not in raw  # a Maildir file has local line ends
        parsed = email.message_from_bytes(raw, policy=policy.default)
        assert parsed["Delivered-To"] == parsed["To"]
        assert parsed["Return-Path"] == f"<{SENDER}>"
        assert parsed.get_content().startswith(".dot line\n")
        tos.add(parsed["To"])
    assert tos == {"a@example.com", "b@example.com"}


def test_outbox_that_cannot_be_created_says_which_folder(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TransportError, match=r"outbox .*file.*delivery.outbox"):
        OutboxTransport(blocker / "box").open()


# -- SMTP: plain sending --------------------------------------------------------------------------


def test_smtp_delivers_bytes_intact_over_reused_connections(smtp: SmtpServer) -> None:
    body = ".starts with a dot\r\n..two dots\r\nplain\r\n"
    transport = SmtpTransport(smtp_settings(smtp.port, connections=2))
    with transport:
        results = [
            transport.send(SENDER, f"r{i}@example.com", message(f"r{i}@example.com", body))
            for i in range(12)
        ]
    assert all(r.ok for r in results), results
    got = smtp.handler.received
    assert len(got) == 12
    assert {r.rcpt for r in got} == {f"r{i}@example.com" for i in range(12)}
    for r in got:
        assert r.mail_from == SENDER
        assert r.data == message(r.rcpt, body)  # dot-stuffing undone by the server
    # one thread sent them all: the first connection was reused for every message
    assert smtp.handler.connections == 1


@pytest.mark.parametrize(
    ("where", "reply", "status"),
    [
        ("rcpt", "450 4.2.1 Mailbox busy, try later", "retry"),
        ("rcpt", "550 5.1.1 No such user", "bounce"),
        ("rcpt", "554 5.7.1 Relay access denied", "fail"),  # about us, not the address
        ("data", "451 4.3.0 Try again", "retry"),
        ("data", "554 5.7.1 Message rejected as spam", "fail"),
        ("data", "550 5.1.1 Unknown recipient", "bounce"),
        ("mail", "553 5.7.1 Sender refused", "fail"),  # our sender: fail, suppress no one
    ],
)
@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_replies_become_send_results(
    where: str, reply: str, status: str, pipelining: bool
) -> None:
    rcpt = "x@example.com"
    with smtp_server(pipelining=pipelining) as server:
        if where == "mail":
            server.handler.faults.mail.append(reply)
        else:
            getattr(server.handler.faults, where)[rcpt] = [reply]
        with SmtpTransport(smtp_settings(server.port)) as transport:
            result = transport.send(SENDER, rcpt, message(rcpt))
            assert result.status == status
            assert result.code == int(reply[:3])
            assert reply.split(" ", 1)[1] in result.detail
            # the connection is still usable for the next message
            assert transport.send(SENDER, rcpt, message(rcpt)).ok
        assert server.handler.counts() == {rcpt: 1}
        assert server.handler.connections == 1


class _Writes:
    """A connection's socket that records every write the client makes."""

    def __init__(self, sock: object, writes: list[bytes]) -> None:
        self._sock, self.writes = sock, writes

    def sendall(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self._sock.sendall(data)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def record_writes(transport: SmtpTransport) -> list[bytes]:
    writes: list[bytes] = []
    for conn in transport._idle:
        conn.sock = _Writes(conn.sock, writes)  # type: ignore[assignment]
    return writes


def upper(writes: list[bytes]) -> list[bytes]:
    return [w.upper() for w in writes]  # SMTP verbs are case-insensitive


def test_smtp_pipelines_mail_rcpt_and_data_then_sends_the_body(smtp: SmtpServer) -> None:
    rcpts = [f"r{i}@example.com" for i in range(3)]
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        writes = record_writes(transport)
        assert all(transport.send(SENDER, r, message(r)).ok for r in rcpts)
    # two writes (so two round trips) a message: the envelope and DATA, then the body
    assert upper(writes) == upper(
        [
            *(
                piece
                for r in rcpts
                for piece in (
                    f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{r}>\r\nDATA\r\n".encode(),
                    message(r) + b".\r\n",
                )
            ),
            b"QUIT\r\n",
        ]
    )
    assert [m.data for m in smtp.handler.received] == [message(r) for r in rcpts]


def test_smtp_without_pipelining_waits_for_each_reply() -> None:
    with smtp_server(pipelining=False) as server:
        with SmtpTransport(smtp_settings(server.port)) as transport:
            writes = record_writes(transport)
            assert transport.send(SENDER, "a@example.com", message("a@example.com")).ok
        assert upper(writes) == upper(
            [
                f"MAIL FROM:<{SENDER}>\r\n".encode(),
                b"RCPT TO:<a@example.com>\r\n",
                b"DATA\r\n",
                message("a@example.com") + b".\r\n",
                b"QUIT\r\n",
            ]
        )
        assert server.handler.messages_for("a@example.com") == [message("a@example.com")]


@pytest.mark.parametrize("pipelining", [True, False])
def test_prepared_wire_form_goes_out_as_it_is(pipelining: bool) -> None:
    # A line starting with "." travels doubled on the wire and arrives single again.
    head = f"From: <{SENDER}>\r\nTo: a@example.com\r\nSubject: dots\r\n\r\n".encode()
    pieces = [head, b".first\r\n", b"middle\r\n..two\r\n"]
    wire = [head, b"..first\r\n", b"middle\r\n...two\r\n"]
    original = b"".join(pieces)
    with smtp_server(pipelining=pipelining) as server:
        with SmtpTransport(smtp_settings(server.port)) as transport:
            writes = record_writes(transport)
            assert transport.send_message(SENDER, "a@example.com", Outgoing(pieces, wire)).ok
            # not prepared: the transport stuffs it itself
            assert transport.send_message(SENDER, "b@example.com", Outgoing(pieces)).ok
        assert b"".join(wire) + b".\r\n" in writes
        assert server.handler.messages_for("a@example.com") == [original]
        assert server.handler.messages_for("b@example.com") == [original]


def test_a_server_asking_for_data_after_refusing_the_recipient_gets_none() -> None:
    # A broken server: it refuses RCPT, then answers the pipelined DATA with 354 all the same.
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 broken\r\n")
            replies = {b"EHLO": b"250-broken\r\n250 PIPELINING\r\n", b"MAIL": b"250 ok\r\n"}
            replies |= {b"RCPT": b"550 5.1.1 no such user\r\n", b"DATA": b"354 go on\r\n"}
            replies |= {b"RSET": b"250 ok\r\n", b"QUIT": b"221 bye\r\n"}
            for line in lines:
                seen.append(line)
                if line == b".\r\n":
                    conn.sendall(b"250 accepted nothing\r\n")
                elif line[:4].upper() in replies:
                    conn.sendall(replies[line[:4].upper()])
                if line[:4].upper() == b"QUIT":
                    return

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    with listener, SmtpTransport(smtp_settings(port)) as transport:
        result = transport.send(SENDER, "gone@example.com", message("gone@example.com"))
    server.join(5)
    assert (result.status, result.code) == ("bounce", 550)
    assert "no such user" in result.detail
    after_data = seen[[ln.upper() for ln in seen].index(b"DATA\r\n") + 1 :]
    assert after_data[0] == b".\r\n"  # an empty message: the body was never sent
    assert not any(b"Subject" in ln for ln in seen)


@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_cut_before_mail_is_answered_is_resent_at_once(pipelining: bool) -> None:
    # The server hangs up on reading MAIL (pipelined: with RCPT and DATA already sent, but no
    # message data): the message cannot have gone out, so a fresh connection sends it now.
    rcpts = [f"r{i}@example.com" for i in range(5)]
    with smtp_server(pipelining=pipelining) as server:
        server.handler.faults.drop_mail_every = 3
        with SmtpTransport(smtp_settings(server.port)) as transport:
            results = [transport.send(SENDER, r, message(r)) for r in rcpts]
        assert all(r.ok for r in results), results
        assert server.handler.dropped == 2
        assert server.handler.connections == 3
        assert server.handler.counts() == {r: 1 for r in rcpts}


def test_smtp_reconnects_after_the_server_drops_the_connection(smtp: SmtpServer) -> None:
    smtp.handler.faults.drop_every = 3
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        results = [
            transport.send(SENDER, f"r{i}@example.com", message(f"r{i}@example.com"))
            for i in range(7)
        ]
    statuses = [r.status for r in results]
    # the 3rd and 6th were cut off after the body, unanswered: they may have arrived
    assert statuses == ["sent", "sent", "unknown", "sent", "sent", "unknown", "sent"]
    assert "no reply after the message was sent" in results[2].detail
    assert smtp.handler.connections == 3
    assert set(smtp.handler.counts()) == {f"r{i}@example.com" for i in (0, 1, 3, 4, 6)}


def test_smtp_connection_closed_while_idle_is_replaced_without_an_error(smtp: SmtpServer) -> None:
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        assert transport.send(SENDER, "a@example.com", message("a@example.com")).ok
        for conn in list(transport._idle):
            conn.sock.close()  # what a server's idle timeout looks like to the client
        assert transport.send(SENDER, "b@example.com", message("b@example.com")).ok
    assert smtp.handler.counts() == {"a@example.com": 1, "b@example.com": 1}


def test_smtp_waits_for_a_slow_final_reply_beyond_the_command_timeout(smtp: SmtpServer) -> None:
    # a server may scan the whole message before it answers the end of the data
    smtp.handler.faults.delay = 0.8
    with SmtpTransport(smtp_settings(smtp.port, timeout=0.3)) as transport:
        result = transport.send(SENDER, "a@example.com", message("a@example.com"))
    assert result.ok, result.detail
    assert smtp.handler.counts() == {"a@example.com": 1}


def test_smtp_final_reply_that_never_comes_is_unknown(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    import newsletter.delivery.smtp

    monkeypatch.setattr(newsletter.delivery.smtp, "FINAL_REPLY_TIMEOUT", 0.3)
    smtp.handler.faults.delay = 1.5
    with SmtpTransport(smtp_settings(smtp.port, timeout=0.2)) as transport:
        result = transport.send(SENDER, "a@example.com", message("a@example.com"))
    assert result.status == "unknown"
    assert "no reply after the message was sent" in result.detail
    assert "timed out" in result.detail


def test_smtp_server_that_stops_answering_a_command_times_out(smtp: SmtpServer) -> None:
    # a plain connection keeps its timeout in the kernel: a command whose reply never comes
    # within it still ends the try (to be retried), on a fresh connection too
    smtp.handler.faults.mail_delay = 3.0
    with SmtpTransport(smtp_settings(smtp.port, timeout=0.3)) as transport:
        result = transport.send(SENDER, "a@example.com", message("a@example.com"))
    assert result.status == "retry", result
    assert smtp.handler.counts() == {}


def test_smtp_final_reply_cut_off_mid_line_is_unknown_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server takes the message, sends half of its "250" line and goes silent: the read
    # times out, and the message may have arrived; those bytes are not taken for a reply.
    import newsletter.delivery.smtp

    monkeypatch.setattr(newsletter.delivery.smtp, "FINAL_REPLY_TIMEOUT", 0.3)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            scripted_start(conn)
            scripted_data(conn)
            conn.sendall(b"250 2.0.0 Ok: que")
            done.wait(10)

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        port = listener.getsockname()[1]
        with SmtpTransport(smtp_settings(port, timeout=0.2)) as transport:
            result = transport.send(SENDER, "a@example.com", message("a@example.com"))
    finally:
        done.set()
        server.join(10)
        listener.close()
    assert result.status == "unknown", result
    assert "timed out" in result.detail


@pytest.mark.parametrize("pipelining", [True, False])
def test_one_thread_serves_the_connections_only_of_a_plain_relay_offering_pipelining(
    pipelining: bool,
) -> None:
    with smtp_server(pipelining=pipelining) as server:
        transport = SmtpTransport(smtp_settings(server.port, connections=3))
        with transport:
            conns = transport.loop_connections()
            if pipelining:
                assert conns is not None and len(conns) == 3
                assert len({id(c) for c in conns}) == 3  # three connections, each its own
                for conn in conns:
                    transport.give_back(conn)
            else:
                assert conns is None
        assert server.handler.connections == (3 if pipelining else 1)


@pytest.mark.parametrize("setting", [{"rate_limit": 10}, {"security": "starttls"}])
def test_a_rate_limit_or_tls_keeps_a_thread_per_connection(
    smtp: SmtpServer, setting: dict[str, object]
) -> None:
    transport = SmtpTransport(smtp_settings(smtp.port, **setting))
    assert transport.loop_connections() is None
    assert smtp.handler.connections == 0  # decided from the settings, before connecting


def test_rate_limit_spaces_sends_by_its_interval() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    limit = RateLimit(20, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        limit.wait()
    assert slept == [0.05, 0.05, 0.05]  # the first goes at once, then one every 50 ms
    now[0] += 1.0  # idle for a second: no debt carried over
    limit.wait()
    assert len(slept) == 3


def test_smtp_rate_limit_is_applied_across_connections(smtp: SmtpServer) -> None:
    transport = SmtpTransport(smtp_settings(smtp.port, rate_limit=20, connections=2))
    waits: list[float] = []
    transport._rate.sleep = waits.append  # count the spacing instead of waiting for it
    with transport:
        for i in range(11):
            assert transport.send(SENDER, f"r{i}@example.com", message("x")).ok
    assert len(smtp.handler.received) == 11
    # 11 sends at 20 per second: the limiter held back all but the first, ~50 ms each
    assert len(waits) == 10 and all(0 < w <= 0.05 * 10 for w in waits)


def test_smtp_unreachable_server_fails_at_open_with_the_address() -> None:
    port = 1  # nothing listens there
    with pytest.raises(TransportError, match=r"smtp 127\.0\.0\.1:1: cannot connect"):
        SmtpTransport(smtp_settings(port)).open()


# -- SMTP: TLS and AUTH ---------------------------------------------------------------------------


def test_starttls_and_auth_deliver(tls_cert: tuple[Path, Path]) -> None:
    with smtp_server(
        tls_context=server_context(tls_cert),
        require_starttls=True,
        auth_required=True,
        authenticate=True,
    ) as server:
        server.handler.auth = ("ann", PASSWORD)
        settings = smtp_settings(server.port, security="starttls", username="ann")
        transport = SmtpTransport(
            settings,
            ssl_context=client_context(tls_cert),
            environ={"NEWSLETTER_SMTP_PASSWORD": PASSWORD},
        )
        with transport:
            assert transport.send(SENDER, "a@example.com", message("a@example.com")).ok
        assert server.handler.counts() == {"a@example.com": 1}
        assert server.handler.auth_attempts == ["ann"]


def test_implicit_tls_uses_the_system_trust_store(
    tls_cert: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    with smtp_server(ssl_context=server_context(tls_cert)) as server:
        settings = smtp_settings(server.port, security="tls")
        # untrusted: the self-signed certificate is refused
        with pytest.raises(TransportError, match="TLS handshake failed.*certificate verify failed"):
            SmtpTransport(settings).open()
        # trusted through the standard OpenSSL variable, as an operator would do it
        monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
        with SmtpTransport(settings) as transport:
            assert transport.send(SENDER, "a@example.com", message("a@example.com")).ok
        assert server.handler.counts() == {"a@example.com": 1}


def test_wrong_password_is_reported_without_the_password(
    tls_cert: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with smtp_server(
        tls_context=server_context(tls_cert), require_starttls=True, authenticate=True
    ) as server:
        server.handler.auth = ("ann", "the-right-one")
        transport = SmtpTransport(
            smtp_settings(server.port, security="starttls", username="ann"),
            ssl_context=client_context(tls_cert),
            environ={"NEWSLETTER_SMTP_PASSWORD": PASSWORD},
        )
        with pytest.raises(TransportError) as info:
            transport.open()
        transport.close()
    text = str(info.value)
    assert "login as 'ann' refused (535" in text
    assert "$NEWSLETTER_SMTP_PASSWORD" in text
    assert PASSWORD not in text
    assert PASSWORD not in repr(info.value.__cause__) + repr(info.value.__context__)
    assert PASSWORD not in caplog.text
    assert PASSWORD not in repr(transport)


def test_missing_password_variable_names_it() -> None:
    transport = SmtpTransport(
        smtp_settings(2525, username="ann", password_env="MY_SMTP_PW"), environ={}
    )
    with pytest.raises(TransportError, match=r"\$MY_SMTP_PW is empty; export MY_SMTP_PW"):
        transport.open()


def test_auth_offered_only_after_tls_says_so(tls_cert: tuple[Path, Path]) -> None:
    with smtp_server(tls_context=server_context(tls_cert), authenticate=True) as server:
        transport = SmtpTransport(
            smtp_settings(server.port, security="none", username="ann"),
            environ={"NEWSLETTER_SMTP_PASSWORD": PASSWORD},
        )
        with pytest.raises(TransportError, match="offers no AUTH before TLS; use security"):
            transport.open()


def test_starttls_required_but_not_offered() -> None:
    with smtp_server() as server, pytest.raises(TransportError, match="offers no STARTTLS"):
        SmtpTransport(smtp_settings(server.port, security="starttls")).open()


def test_check_smtp_reports_each_problem_in_one_line(
    tls_cert: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_cert[0]))
    with smtp_server(
        tls_context=server_context(tls_cert), require_starttls=True, authenticate=True
    ) as server:
        server.handler.auth = ("ann", PASSWORD)
        config = config_for(server.port, base_dir=tmp_path)
        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
        assert check_smtp(config.delivery.smtp) == []
        monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
        problems = check_smtp(config.delivery.smtp)
        assert len(problems) == 1 and "\n" not in problems[0]
        assert problems[0].startswith(f"smtp 127.0.0.1:{server.port}: login as 'ann' refused")
        monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD")
        assert check_smtp(config.delivery.smtp) == [
            f"smtp 127.0.0.1:{server.port}: delivery.smtp.username is set but "
            "$NEWSLETTER_SMTP_PASSWORD is empty; export NEWSLETTER_SMTP_PASSWORD with the SMTP "
            "password"
        ]
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", PASSWORD)
    problems = check_smtp(config_for(1).delivery.smtp)
    assert len(problems) == 1 and problems[0].startswith("smtp 127.0.0.1:1: cannot connect")


def test_delivery_config_rejects_unknown_keys_and_values() -> None:
    from newsletter.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(
            "delivery:\n  transport: pigeon\n  smtp: {security: ssl, conections: 2}\n", "c.yaml"
        )
    text = str(info.value)
    assert "delivery.transport: input should be 'outbox' or 'smtp'" in text
    assert "delivery.smtp.security: input should be 'none', 'starttls' or 'tls'" in text
    assert "delivery.smtp.conections: unknown key (did you mean 'connections'?)" in text


def test_smtp_an_unsendable_address_fails_alone_and_the_connection_stays_usable() -> None:
    with smtp_server(pipelining=False) as server:
        with SmtpTransport(smtp_settings(server.port, connections=1)) as transport:
            bad = transport.send(SENDER, "zoë@example.org", message("zoë@example.org"))
            good = transport.send(SENDER, "a@example.com", message("a@example.com"))
        assert bad.status == "fail"
        assert good.ok, good.detail  # no "503 nested MAIL": the failed transaction was reset
        assert server.handler.counts() == {"a@example.com": 1}


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 <r@example.com>: Recipient address rejected", "bounce"),
        ("550 User unknown", "bounce"),  # no enhanced code, but it names the mailbox
        ("550 relay not permitted", "fail"),  # Exim's default: the message, not the address
        ("554 5.7.1 Relay access denied", "fail"),  # the relay refuses us, not the address
    ],
)
def test_smtp_a_5xx_to_rcpt_suppresses_only_when_the_mailbox_is_the_problem(
    reply: str, status: str, smtp: SmtpServer
) -> None:
    smtp.handler.faults.rcpt = {"r@example.com": [reply]}
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        result = transport.send(SENDER, "r@example.com", message("r@example.com"))
    assert result.status == status
    assert result.detail == f"RCPT: {reply}"


def test_smtp_421_to_mail_on_an_idle_connection_reconnects_at_once(smtp: SmtpServer) -> None:
    with SmtpTransport(smtp_settings(smtp.port, connections=1)) as transport:
        assert transport.send(SENDER, "a@example.com", message("a@example.com")).ok
        # what Postfix says to a connection it timed out while it sat in our pool
        smtp.handler.faults.mail = ["421 4.4.2 mail.example.org Error: timeout exceeded"]
        second = transport.send(SENDER, "b@example.com", message("b@example.com"))
    assert second.ok, second.detail
    assert smtp.handler.connections == 2
    assert smtp.handler.counts() == {"a@example.com": 1, "b@example.com": 1}


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        # the recipient's mailbox does not exist: a hard bounce
        ("550 5.1.1 <r@example.com>: Recipient address rejected: User unknown", "bounce"),
        ("550 5.1.2 Host unknown", "bounce"),
        ("553 5.1.3 Bad destination mailbox address syntax", "bounce"),
        ("550 5.1.6 Mailbox has moved", "bounce"),
        ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found", "bounce"),
        ("550 User unknown", "bounce"),
        ("550 No such user here", "bounce"),
        ("550 Requested action not taken: mailbox unavailable", "bounce"),
        ("551 The mailbox does not exist", "bounce"),
        ("553 sorry, that user does not exist", "bounce"),
        ("550 5.0.0 <r@example.com>... User unknown", "bounce"),  # an unspecific code: the text
        # a full mailbox is temporary: retried, never suppressed
        ("552 5.2.2 <r@example.com>: Mailbox full", "retry"),
        ("452 4.2.2 Mailbox full", "retry"),
        ("450 4.2.0 <r@example.com>: Recipient address rejected: Greylisted", "retry"),
        # about our sender, the relay's policy, the message or the system: fail, suppress no one
        ("550 5.1.7 Invalid sender mailbox syntax", "fail"),
        ("550 5.1.8 <digest@example.org>: Sender address rejected: Domain not found", "fail"),
        ("552 5.2.3 Message size exceeds fixed maximum message size", "fail"),
        ("552 5.3.4 Message size exceeds fixed limit", "fail"),
        ("554 5.4.4 Unable to route", "fail"),
        ("500 5.5.2 Syntax error", "fail"),
        ("554 5.6.0 Message content rejected", "fail"),
        ("550 5.7.1 Client host rejected: cannot find your hostname", "fail"),
        ("550 5.7.26 Unauthenticated email is not accepted (DMARC)", "fail"),
        ("550 Sender address rejected: Domain not found", "fail"),  # no code, not the mailbox
        ("553 Sender domain does not exist", "fail"),
        ("550 relay not permitted", "fail"),
    ],
)
def test_only_a_reply_that_the_mailbox_does_not_exist_is_a_hard_bounce(
    reply: str, status: str, smtp: SmtpServer
) -> None:
    smtp.handler.faults.rcpt = {"r@example.com": [reply]}
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        result = transport.send(SENDER, "r@example.com", message("r@example.com"))
    assert (result.status, result.detail) == (status, f"RCPT: {reply}")


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("552 5.2.3 Message size exceeds fixed maximum message size", "fail"),
        ("552 5.2.2 Mailbox full", "retry"),
        ("550 5.1.1 Unknown recipient", "bounce"),  # one recipient per message: it is theirs
        ("550 Requested action not taken: mailbox unavailable", "fail"),  # no code after DATA
    ],
)
def test_a_refusal_after_the_body_is_classified_by_the_same_rule(
    reply: str, status: str, smtp: SmtpServer
) -> None:
    smtp.handler.faults.data = {"r@example.com": [reply]}
    with SmtpTransport(smtp_settings(smtp.port)) as transport:
        result = transport.send(SENDER, "r@example.com", message("r@example.com"))
    assert (result.status, result.detail) == (status, f"DATA: {reply}")
