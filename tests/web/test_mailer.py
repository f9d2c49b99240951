"""The confirmation emails' own worker: a queue in the state, sent apart from the pages.

The pages only queue a confirmation; the worker sends it, retries later what cannot go out now,
and a restart loses nothing. With a relay that takes a message and never answers, a real
`newsletter serve` still answers every page at once.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from newsletter.config import SmtpConfig
from newsletter.delivery.smtp import SmtpTransport
from newsletter.store.state import Store
from newsletter.web.app import create_app
from tests.support.clock import Clock
from tests.support.paths import REPO
from tests.support.smtp_server import SmtpServer, free_port
from tests.support.web import ADDRESS, KEYS, TestClient, make_site, sign_up


def smtp_to(port: int) -> SmtpTransport:
    return SmtpTransport(SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5))


def test_a_sign_up_only_queues_its_confirmation_and_the_worker_sends_it(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    assert sign_up(site).status_code == 200
    [queued] = site.store.mail_queue.waiting()
    assert (queued.kind, queued.email) == ("confirm", ADDRESS)
    assert not site.outbox.exists()  # the page sent nothing itself
    assert site.send_queued() == 1
    assert site.store.mail_queue.waiting() == []
    [mail] = site.mails()
    assert mail["To"] == ADDRESS


def test_the_running_app_sends_a_confirmation_at_once(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    with TestClient(site.app, base_url="http://testserver") as client:  # runs the lifespan
        assert client.post("/subscribe", data={"email": ADDRESS}).status_code == 200
        deadline = time.monotonic() + 10
        while not (site.outbox / "new").is_dir() or not any((site.outbox / "new").iterdir()):
            assert time.monotonic() < deadline, "the worker sent nothing in 10 s"
            time.sleep(0.05)
    assert site.store.mail_queue.waiting() == []


def test_a_confirmation_that_cannot_go_out_now_goes_out_later_even_after_a_restart(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    site = make_site(tmp_path)
    down = free_port()  # nothing listens there: the relay is down
    app = create_app(
        site.config, keys=KEYS, store=site.store, transport_factory=lambda: smtp_to(down)
    )
    client = TestClient(app, base_url="http://testserver", client=("198.51.100.7", 40000))
    assert client.post("/subscribe", data={"email": ADDRESS}).status_code == 200
    assert app.state.web.mailer.run_once() == 0
    [deferred] = site.store.mail_queue.waiting()
    assert deferred.attempts == 1 and "connect" in (deferred.last_error or "")
    site.store.close()

    # the process restarts; the relay is back
    clock = Clock(site.clock())
    store = Store.open(tmp_path / "state.db", clock=clock)
    again = create_app(
        site.config, keys=KEYS, store=store, transport_factory=lambda: smtp_to(smtp.port)
    )
    assert again.state.web.mailer.run_once() == 0  # not due yet: it backs off
    clock.advance(minutes=1)
    assert again.state.web.mailer.run_once() == 1
    assert smtp.handler.counts() == {ADDRESS: 1}
    assert store.mail_queue.waiting() == []
    store.close()


def test_a_confirmation_is_given_up_once_its_link_would_have_expired(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = make_site(tmp_path)
    down = free_port()
    app = create_app(
        site.config, keys=KEYS, store=site.store, transport_factory=lambda: smtp_to(down)
    )
    TestClient(app, client=("198.51.100.7", 40000)).post("/subscribe", data={"email": ADDRESS})
    for _ in range(12):
        app.state.web.mailer.run_once()
        site.clock.advance(hours=5)
    assert site.store.mail_queue.waiting() == []
    assert f"confirmation to {ADDRESS} given up after" in caplog.text


# -- a hung relay behind a real `newsletter serve` -----------------------------------------------


@contextmanager
def serve(folder: Path, smtp_port: int) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            title: Hung Relay Digest
            base_url: {base}
            state: {folder / "state.db"}
            subscribers: {folder / "subscribers.yaml"}
            sender: {{address: digest@example.org}}
            delivery:
              transport: smtp
              smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none}}
            """
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET_KEY"] = "hung-relay-secret-key-0123456789"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = (folder / "serve.log").open("w")
    command = [sys.executable, "-m", "newsletter", "serve", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)], env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (folder / "serve.log").read_text()
            try:
                if httpx.get(base + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (folder / "serve.log").read_text()
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_pages_answer_at_once_while_the_relay_hangs(tmp_path: Path, smtp: SmtpServer) -> None:
    smtp.handler.faults.hang = True  # takes each message and never answers
    with serve(tmp_path, smtp.port) as base:
        # 45 sign-ups from 5 client addresses (9 each, under the 10 an hour each may make)
        for n in range(45):
            source = f"127.0.0.{2 + n % 5}"
            transport = httpx.HTTPTransport(local_address=source)
            with httpx.Client(transport=transport, timeout=3.0) as client:
                answer = client.post(base + "/subscribe", data={"email": f"reader{n}@example.org"})
            assert answer.status_code == 200 and "Check your inbox" in answer.text, n
        for path in ("/", "/feed.xml", "/issues", "/static/style.css"):
            assert httpx.get(base + path, timeout=3.0).status_code == 200, path
        assert smtp.handler.hung >= 1  # the worker is waiting on the relay meanwhile
        with sqlite3.connect(tmp_path / "state.db") as db:
            queued = db.execute("SELECT count(*) FROM mail_queue").fetchone()[0]
        assert queued == 45  # every confirmation waits in the queue, none lost
