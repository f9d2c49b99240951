from __future__ import annotations

import base64
import contextlib
import email
import mailbox
import smtplib
import socket
import threading
from collections import Counter
from email import policy
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from newsletter.audience.tokens import read_token
from newsletter.config import parse_config
from newsletter.delivery import message as mail
from newsletter.delivery import plan
from newsletter.delivery import send as delivery
from newsletter.delivery.outbox import OutboxTransport
from newsletter.delivery.send import DeliveryReport
from newsletter.delivery.smtp import SmtpTransport
from newsletter.errors import StoreError
from newsletter.job import send_rendered
from newsletter.models import Issue, Subscriber
from newsletter.store.state import Store
from tests.support.ledger import enqueue
from tests.support.sending import KEYS, make_config, people, smtp_config, smtp_deliver
from tests.support.smtp_server import SmtpServer, scripted_data, scripted_start, smtp_server

pytestmark = pytest.mark.usefixtures("engine")  # each test both ways (conftest)


def parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    assert not any(part.defects for part in msg.walk())
    return msg


def outbox_messages(path: Path) -> dict[str, list[email.message.EmailMessage]]:
    box = mailbox.Maildir(path, create=False)
    out: dict[str, list[email.message.EmailMessage]] = {}
    for key in box.iterkeys():
        msg = parse(box.get_bytes(key))
        out.setdefault(str(msg["Delivered-To"]), []).append(msg)
    return out


def text_of(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()


def token_in(url: str) -> str:
    return parse_qs(urlparse(url).query)["token"][0]


# -- variants, formats, skips (outbox) ------------------------------------------------------------


def test_each_subscriber_gets_their_topics_rendered_once_per_variant(
    tmp_path: Path, issue: Issue, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from newsletter import job

    renders: list[frozenset[str] | None] = []
    builds: list[str] = []
    real_render, real_build = job.render_issue, delivery.build_template

    def counting_render(*args: object, topics: frozenset[str] | None = None) -> object:
        renders.append(topics)
        return real_render(*args, topics=topics)  # type: ignore[arg-type]

    def counting_build(*args: object, fmt: str = "html", **kw: object) -> object:
        builds.append(fmt)
        return real_build(*args, fmt=fmt, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(job, "render_issue", counting_render)
    monkeypatch.setattr(delivery, "build_template", counting_build)
    first, second = issue.sections[0].topic, issue.sections[1].topic
    audience = (
        people(30)  # every topic
        + [Subscriber(f"one{i}@example.com", topics=frozenset({first.upper()})) for i in range(20)]
        + [Subscriber(f"two{i}@example.com", topics=frozenset({first, second})) for i in range(5)]
        + [Subscriber("plain@example.com", format="text")]
        + [Subscriber("nothing@example.com", topics=frozenset({"Quantum Knitting"}))]
    )
    config = make_config(tmp_path, "delivery: {outbox: out}\n")
    seen: list[tuple[int, int]] = []
    report = send_rendered(
        issue,
        config,
        audience,
        store,
        OutboxTransport(tmp_path / "out"),
        keys=KEYS,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert (report.sent, report.failed, report.skipped, report.stopped_early) == (56, 0, 1, False)
    # three topic selections rendered once each; four templates (the text one is its own)
    assert sorted(map(str, renders)) == sorted(
        map(str, [None, frozenset({first}), frozenset({first, second})])
    )
    assert sorted(builds) == ["html", "html", "html", "text"]
    assert seen[0] == (0, 57) and seen[-1] == (57, 57)

    got = outbox_messages(tmp_path / "out")
    assert sorted(got) == sorted(s.email for s in audience if s.email != "nothing@example.com")
    assert all(len(v) == 1 for v in got.values())
    one = text_of(got["one0@example.com"][0])
    assert first.upper() in one and second.upper() not in one
    assert second.upper() in text_of(got["two0@example.com"][0])
    everything = text_of(got["reader000@example.com"][0])
    assert all(s.topic.upper() in everything for s in issue.sections)
    plain = got["plain@example.com"][0]
    assert plain.get_content_type() == "text/plain"
    assert got["reader007@example.com"][0]["To"] == "Reader 7 <reader007@example.com>"
    # the links are the recipient's own: their tokens carry an opaque id that the state maps
    # back to their address, and nothing of the address itself (a token is only signed)
    for addr in ("reader007@example.com", "one3@example.com", "plain@example.com"):
        msg = got[addr][0]
        unsub = str(msg["List-Unsubscribe"]).split(">")[0].lstrip("<")
        assert unsub.startswith("https://news.example.org/unsubscribe?token=")
        rid = read_token("unsubscribe", token_in(unsub), KEYS)
        assert store.recipients.email_of(rid) == addr
        payload = token_in(unsub).split(".")[0]
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        assert b"@" not in decoded and addr.split("@")[0].encode() not in decoded
        assert unsub in text_of(msg)
        prefs = next(w for w in text_of(msg).split() if "/preferences?token=" in w)
        assert read_token("preferences", token_in(prefs), KEYS) == rid
    counts = store.ledger.counts(issue.id)
    assert counts == {"pending": 0, "sent": 56, "failed": 0, "skipped": 1}
    skipped = list(store.ledger.rows(issue.id, "skipped"))
    assert [r.email for r in skipped] == ["nothing@example.com"]
    assert skipped[0].last_error == "none of the chosen topics has papers this week"

    # a second run finds nothing to send and renders nothing
    renders.clear()
    again = send_rendered(
        issue, config, audience, store, OutboxTransport(tmp_path / "out"), keys=KEYS
    )
    assert (again.sent, again.already_sent, renders) == (0, 56, [])
    assert sum(len(v) for v in outbox_messages(tmp_path / "out").values()) == 56


def test_send_empty_sends_the_empty_variant(tmp_path: Path, issue: Issue, store: Store) -> None:
    config = make_config(tmp_path, "send_empty: true\n")
    audience = [Subscriber("nothing@example.com", topics=frozenset({"Quantum Knitting"}))]
    report = send_rendered(
        issue, config, audience, store, OutboxTransport(tmp_path / "out"), keys=KEYS
    )
    assert (report.sent, report.skipped) == (1, 0)
    (msg,) = outbox_messages(tmp_path / "out")["nothing@example.com"]
    assert issue.sections[0].topic.upper() not in text_of(msg)


def test_rerun_skips_whoever_left_the_audience(tmp_path: Path, issue: Issue, store: Store) -> None:
    config = make_config(tmp_path)
    audience = people(3)
    enqueue(store, issue.id, [(s.email, "html:all") for s in audience])  # a run that died early
    report = send_rendered(
        issue, config, audience[:2], store, OutboxTransport(tmp_path / "out"), keys=KEYS
    )
    assert (report.sent, report.skipped) == (2, 1)
    (row,) = store.ledger.rows(issue.id, "skipped")
    assert row.email == "reader002@example.com" and "no longer in the audience" in str(
        row.last_error
    )


# -- SMTP with faults ------------------------------------------------------------------------------


def test_faults_end_with_everyone_delivered_once_or_recorded(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(40)
    bounced = "reader013@example.com"
    faults = smtp.handler.faults
    faults.rcpt = {
        "reader001@example.com": ["450 4.2.1 busy", "451 4.3.0 later"],
        bounced: ["550 5.1.1 no such user"],
        "reader020@example.com": ["421 4.7.0 closing, too many"],
    }
    faults.data = {
        "reader002@example.com": ["451 4.3.0 try again"],
        "reader030@example.com": ["554 5.7.1 rejected as spam"],
    }
    faults.drop_every = 7
    faults.delay = 0.01
    config = smtp_config(tmp_path, smtp, connections=3)
    report = smtp_deliver(issue, config, audience, store)
    counts = smtp.handler.counts()
    dropped = smtp.handler.dropped
    assert dropped >= 5  # the server really cut connections
    assert not report.stopped_early
    failed = {r.email: r for r in store.ledger.rows(issue.id, "failed")}
    retry = {r.email: r for r in store.ledger.rows(issue.id, "pending")}
    # everyone delivered exactly once, or recorded as failed for good, or left for a later run
    # (this server keeps nothing it cut off; a message cut off twice in a run waits for the next)
    assert all(n == 1 for n in counts.values()), counts
    assert set(counts) | set(failed) | set(retry) == {s.email for s in audience}
    assert not set(counts) & set(failed) and not set(retry) & (set(counts) | set(failed))
    assert (report.sent, report.failed, report.suppressed) == (len(counts), len(failed), 1)
    assert report.to_retry == len(retry)
    assert all("it may have arrived" in str(r.last_error) for r in retry.values())
    assert store.is_suppressed(bounced)
    assert not store.is_suppressed("reader030@example.com")  # the message, not the address
    assert set(failed) == {bounced, "reader030@example.com"}
    assert "550 5.1.1 no such user" in str(failed[bounced].last_error)
    sent = {r.email: r for r in store.ledger.rows(issue.id, "sent")}
    # two 4xx, then accepted (or cut off after its body, and left for a later run)
    assert {**retry, **sent}["reader001@example.com"].attempts >= 3
    some = sorted(sent)[3]
    got = parse(smtp.handler.messages_for(some)[0])
    assert got["Message-ID"] == sent[some].message_id

    # a rerun sends only the rows left to retry, and says who failed before
    again = send_rendered(
        issue, config, audience, store, OutboxTransport(tmp_path / "o"), keys=KEYS
    )
    assert (again.sent, again.failed, again.pending) == (len(retry), 0, 0)
    assert (again.already_sent, again.failed_before) == (len(counts), len(failed))
    assert f", {len(counts)} sent before, {len(failed)} failed before" in again.summary()


def test_messages_larger_than_the_socket_takes_at_once_arrive_whole(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a small send buffer, as a relay that reads slowly makes it: each message goes out in
    # many writes, between which the other connections go on
    connect = SmtpTransport._connect

    def small_buffer(self: SmtpTransport) -> smtplib.SMTP:
        conn = connect(self)
        assert conn.sock is not None
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        return conn

    monkeypatch.setattr(SmtpTransport, "_connect", small_buffer)
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, people(6), store)
    assert (report.sent, report.failed, report.pending) == (6, 0, 0)
    for i in range(6):
        [data] = smtp.handler.messages_for(f"reader{i:03d}@example.com")
        assert len(data) > 5 * 4096
        html = parse(data).get_body(("html",))
        assert html is not None
        assert str(html.get_content()).rstrip().endswith("</html>")


def test_a_refused_sender_on_a_connection_the_server_then_closes_is_sent_on_a_fresh_one(
    tmp_path: Path, issue: Issue, store: Store
) -> None:
    # The first connection refuses MAIL and hangs up (the RSET after it finds it closed): as
    # for a connection that timed out idle, the message goes again at once on a new one.
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        for number in (1, 2):
            conn, _ = listener.accept()
            with conn:
                scripted_start(conn)
                if number == 1:
                    conn.sendall(b"550 5.7.1 not now\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n")
                    continue
                got.append(scripted_data(conn))
                conn.sendall(b"250 2.0.0 queued\r\n")
                with contextlib.suppress(OSError):
                    conn.recv(1024)  # QUIT
                    conn.sendall(b"221 bye\r\n")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    port = listener.getsockname()[1]
    config = make_config(
        tmp_path,
        "delivery:\n  transport: smtp\n"
        f"  smtp: {{host: 127.0.0.1, port: {port}, security: none, timeout: 5, connections: 1}}\n",
    )
    report = smtp_deliver(issue, config, people(1), store)
    server.join(10)
    listener.close()
    assert (report.sent, report.failed, report.pending) == (1, 0, 0)
    assert len(got) == 1 and b"reader000@example.com" in got[0]


def test_a_store_failure_stops_the_run_after_recording_what_went_out(
    tmp_path: Path,
    issue: Issue,
    store: Store,
    smtp: SmtpServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The ledger refuses one mark: the run stops with the error, and the messages the other
    # connections had in flight are still marked, so a rerun sends none of them again.
    from newsletter.store.marks import Marks

    real = Marks.sent
    failing = "reader005@example.com"

    def sent(self: Marks, email: str, message_id: str | None) -> bool:
        if email == failing:
            raise StoreError("state.db: disk I/O error")
        return real(self, email, message_id)

    monkeypatch.setattr(Marks, "sent", sent)
    config = smtp_config(tmp_path, smtp, connections=3)
    with pytest.raises(StoreError):
        smtp_deliver(issue, config, people(40), store)
    arrived = set(smtp.handler.counts())
    marked = {r.email for r in store.ledger.rows(issue.id, "sent")}
    assert failing in arrived and failing not in marked
    assert marked == arrived - {failing}
    assert len(arrived) < 40  # it stopped


def test_connections_cut_mid_pipeline_lose_and_duplicate_no_one(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    # Cut after the pipelined MAIL, RCPT and DATA (no message data yet: resent at once), and
    # after the body, unanswered (the client cannot know if it was kept: sent once more, and
    # if that copy is unanswered too, left pending for a later run rather than risk a third
    # copy in this one).
    audience = people(40)
    smtp.handler.faults.drop_mail_every = 5
    smtp.handler.faults.drop_every = 6
    config = smtp_config(tmp_path, smtp, connections=3)
    report = smtp_deliver(issue, config, audience, store)
    counts = smtp.handler.counts()
    dropped = smtp.handler.dropped
    assert dropped >= 10
    retry = {r.email for r in store.ledger.rows(issue.id, "pending")}
    assert set(counts.values()) == {1}  # no one twice (this server keeps nothing it cut off)
    assert set(counts) | retry == {s.email for s in audience} and not set(counts) & retry
    assert (report.sent, report.failed, report.stopped_early) == (len(counts), 0, False)
    assert report.to_retry == len(retry)
    assert store.ledger.counts(issue.id) == {
        "pending": len(retry),
        "sent": len(counts),
        "failed": 0,
        "skipped": 0,
    }


def test_too_many_errors_in_a_row_stop_the_run_and_a_rerun_finishes(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(30)
    smtp.handler.faults.mail = ["451 4.3.2 system not accepting messages"] * 1000
    config = smtp_config(tmp_path, smtp, "max_consecutive_errors: 5", connections=1)
    report = smtp_deliver(issue, config, audience, store)
    assert report.stopped_early
    assert report.reason.startswith("5 errors in a row, the last: MAIL: 451 4.3.2")
    assert report.sent == 0 and report.pending == 30
    assert smtp.handler.counts() == {}
    # the server recovers; the rerun sends everything, once
    smtp.handler.faults.mail.clear()
    report = smtp_deliver(issue, config, audience, store)
    assert (report.sent, report.pending, report.stopped_early) == (30, 0, False)
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_hard_bounces_in_a_row_do_not_stop_the_run(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(12)
    gone = [s.email for s in audience[:8]]  # an old list: the first eight mailboxes are gone
    smtp.handler.faults.rcpt = {email: ["550 5.1.1 no such user"] for email in gone}
    config = smtp_config(tmp_path, smtp, "max_consecutive_errors: 3", connections=1)
    report = smtp_deliver(issue, config, audience, store)
    assert not report.stopped_early
    assert (report.sent, report.failed, report.suppressed) == (4, 8, 8)
    assert set(smtp.handler.counts()) == {s.email for s in audience[8:]}


def test_login_refused_stops_the_run_and_keeps_the_ledger(
    tmp_path: Path, issue: Issue, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_SMTP_PASSWORD", "wrong")
    with smtp_server(authenticate=True, auth_require_tls=False) as server:
        server.handler.auth = ("ann", "right")
        config = smtp_config(tmp_path, server, username="ann")
        report = send_rendered(
            issue, config, people(3), store, SmtpTransport(config.delivery.smtp), keys=KEYS
        )
    assert report.stopped_early and "login as 'ann' refused" in report.reason
    assert "wrong" not in report.reason
    assert store.ledger.counts(issue.id)["pending"] == 3


def test_stop_request_ends_the_run_and_a_rerun_finishes(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(200)
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 20:
            stop.set()

    smtp.handler.faults.delay = 0.005
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, audience, store, retry=None, progress=progress, stop=stop)
    assert report.stopped_early and report.reason == "stop requested"
    assert 20 <= report.sent < 200 and report.pending == 200 - report.sent
    report = send_rendered(
        issue, config, audience, store, SmtpTransport(config.delivery.smtp), keys=KEYS
    )
    assert report.pending == 0 and not report.stopped_early
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_a_stop_requested_before_the_send_sends_nothing(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    stop = threading.Event()
    stop.set()  # e.g. SIGTERM while the sources were still being read
    config = smtp_config(tmp_path, smtp, connections=4)
    transport = SmtpTransport(config.delivery.smtp)
    report = send_rendered(issue, config, people(10), store, transport, keys=KEYS, stop=stop)
    assert smtp.handler.received == [] and smtp.handler.connections == 0
    assert report.stopped_early and report.reason == "stop requested"
    assert (report.sent, report.pending) == (0, 10)


def test_dkim_signed_delivery(tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    config = smtp_config(tmp_path, smtp)
    config = config.model_copy(
        update={
            "dkim": parse_config(
                "dkim: {domain: example.org, selector: s1, key_path: k.pem}", "c", tmp_path
            ).dkim
        }
    )
    send_rendered(issue, config, people(2), store, SmtpTransport(config.delivery.smtp), keys=KEYS)
    data = smtp.handler.messages_for("reader001@example.com")[0]
    assert data.startswith(b"DKIM-Signature:")
    assert dkim.verify(data, dnsfunc=lambda *_, **__: b"v=DKIM1; k=rsa; p=" + base64.b64encode(der))


def test_report_summary_reads_as_one_line() -> None:
    report = DeliveryReport(sent=5, failed=1, suppressed=1, skipped=2, pending=1, seconds=1.25)
    report.stopped_early, report.reason = True, "20 errors in a row"
    assert report.summary() == (
        "5 sent, 1 failed, 1 suppressed, 2 skipped, 1 pending in 1.2 s; "
        "stopped early: 20 errors in a row"
    )


def test_variant_labels_are_short_and_stable(issue: Issue) -> None:
    topics = [s.topic for s in issue.sections]
    everything = plan.selection(issue, frozenset(t.lower() for t in topics))
    assert everything is None  # choosing every topic this week is the "all" variant
    some = plan.selection(issue, frozenset({topics[2], topics[0], "Gone Topic"}))
    assert some == (topics[0], topics[2])  # issue order
    assert plan.selection(issue, frozenset()) == ()
    label = plan.variant_label(issue, some, "text")
    assert label == "text:0.2"  # the sections' places in the issue: any sender can read it back
    assert plan.parse_label(issue, label) == (some, "text")
    assert plan.variant_label(issue, None, "html") == "html:all"
    assert plan.parse_label(issue, "html:all") == (None, "html")
    assert plan.parse_label(issue, plan.variant_label(issue, (), "html")) == ((), "html")
    # the hashed labels of earlier versions, and places the issue does not have, are not read
    for other in ("skip", "text:3f9a0c12d4e5", f"html:0.{len(topics)}", "pdf:all"):
        assert plan.parse_label(issue, other) is None
    assert mail.list_id(make_config(Path("."))) == "papers-of-the-week.example.org"
