"""End to end in a real headless Chromium against a real `newsletter serve` process.

Sign up through the form, confirm from the link in the outbox, receive the weekly issue, leave
through the issue's List-Unsubscribe link, and check the next issue skips the address. Everything
runs on 127.0.0.1 with the outbox transport in a temp folder; nothing touches the network.
Screenshots land in tests/artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

import email
import json
import mailbox
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.chromium import ARTIFACTS, chromium
from tests.support.paths import REPO

ROOT = REPO
SECRET = "end-to-end-secret-key-0123456789"
ADA = "ada@example.org"
CONTROL = "control@example.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Setup:
    folder: Path
    config: Path
    base: str
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `python -m newsletter ARGS --config CFG` and require success."""
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *args, "--config", str(self.config)],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"newsletter {' '.join(args)} failed:\n{done.stderr}"
        return done

    def mails(self) -> list[EmailMessage]:
        box = mailbox.Maildir(self.folder / "outbox", create=True)
        found = []
        for key in box.iterkeys():
            with box.get_file(key) as f:
                found.append(email.message_from_binary_file(f, policy=policy.default))
        return found  # type: ignore[return-value]

    def wait_for_mail(self, address: str, timeout: float = 15.0) -> EmailMessage:
        """Return the one message to `address`, waiting for it: the server sends a confirmation
        after it has answered the form, so it may land a moment after the page shows."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mails() if m["To"] == address]
            if found or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(found) == 1, f"{len(found)} messages to {address} in the outbox"
        return found[0]

    def digests_to(self, address: str) -> list[EmailMessage]:
        return [
            m
            for m in self.mails()
            if m["To"].addresses[0].addr_spec == address
            and not str(m["Subject"]).startswith("Confirm your")
        ]


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            title: End to End Digest
            base_url: {base}
            state: {tmp_path / "state.db"}
            subscribers: {tmp_path / "subscribers.yaml"}
            sender:
              address: digest@example.org
            delivery:
              transport: outbox
              outbox: {tmp_path / "outbox"}
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "subscribers.yaml").write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET_KEY"] = SECRET
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return Setup(tmp_path, config, base, env)


@pytest.fixture
def server(setup: Setup) -> Iterator[str]:
    """Start `newsletter serve` on a free port; yield its base URL once it answers."""
    port = setup.base.rsplit(":", 1)[1]
    log = (setup.folder / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "serve", "--config", str(setup.config)]
        + ["--port", port],
        env=setup.env,
        cwd=setup.folder,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"newsletter serve exited:\n{(setup.folder / 'serve.log').read_text()}")
            try:
                if httpx.get(setup.base + "/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"newsletter serve did not answer in 30 s:\n{_log(setup)}")
            time.sleep(0.1)
        yield setup.base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _log(setup: Setup) -> str:
    return (setup.folder / "serve.log").read_text()


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def _page(browser: Any, problems: list[str]) -> Any:
    """A phone-sized page that may reach only 127.0.0.1 and records console errors (CSP too)."""
    context = browser.new_context(viewport={"width": 375, "height": 800}, java_script_enabled=False)

    def route(r: Any) -> None:
        if r.request.url.startswith("http://127.0.0.1"):
            r.continue_()
        else:
            problems.append(f"blocked request to {r.request.url}")
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return page


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def _fits_phone(page: Any) -> None:
    # the browser's own measure, read over the debugging protocol (the page runs no script)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, f"{page.url} is {width}px wide on a 375px phone"


def _link(msg: EmailMessage, base: str, path: str) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    found = re.search(rf"{re.escape(base)}/{path}\?token=[\w.\-]+", body.get_content())
    assert found, f"no {path} link in the message"
    return found.group(0)


def test_sign_up_confirm_receive_and_unsubscribe(setup: Setup, server: str, browser: Any) -> None:
    problems: list[str] = []
    page = _page(browser, problems)
    setup.cli("subscribers", "add", CONTROL)  # someone who stays, so the last run sends at all

    # 1. the home page and its form
    page.goto(server + "/")
    assert page.locator("h1").inner_text() == "End to End Digest"
    _fits_phone(page)
    _shot(page, "web-home-phone.png")
    page.get_by_label("Email address").fill(ADA)
    page.get_by_label("Name").fill("Ada")
    page.get_by_role("button", name="Subscribe").click()
    assert page.locator("h1").inner_text() == "Check your inbox"

    # 2. the confirmation email, its link, the button
    confirmation = setup.wait_for_mail(ADA)
    assert confirmation["Subject"] == "Confirm your subscription to End to End Digest"
    page.goto(_link(confirmation, server, "confirm"))
    assert page.locator("h1").inner_text() == "Confirm your subscription"
    _shot(page, "web-confirm-phone.png")
    page.get_by_role("button", name="Confirm my subscription").click()
    assert page.locator("h1").inner_text() == "You are subscribed"

    listed = json.loads(setup.cli("subscribers", "list", "--format", "json").stdout)
    [ada] = [row for row in listed if row["email"] == ADA]
    assert ada["status"] == "confirmed" and ada["receives"] is True

    # 3. the weekly job delivers; its List-Unsubscribe link leads to the button
    setup.cli("run", "--papers", "sample")
    [issue] = setup.digests_to(ADA)
    assert len(setup.digests_to(CONTROL)) == 1
    header = str(issue["List-Unsubscribe"])
    url = re.search(r"<(http[^>]+)>", header)
    assert url and url.group(1).startswith(server + "/unsubscribe?token="), header
    page.goto(url.group(1))
    assert page.locator("h1").inner_text() == "Unsubscribe"
    _fits_phone(page)
    page.get_by_role("button", name="Unsubscribe").click()
    assert page.locator("h1").inner_text() == "You are unsubscribed"
    _shot(page, "web-unsubscribed-phone.png")

    # the archive shows the issue, every paper on one page
    page.goto(server + "/issues")
    page.locator("ul.issues a").first.click()
    assert page.locator("li.paper").count() > 0
    _fits_phone(page)
    _shot(page, "web-issue-phone.png")

    # 4. the next issue skips the address, and only that one
    # next week's issue, with new papers (those of the first issue are never sent again)
    hf_api = str(ROOT / "tests" / "data" / "samples" / "hf-daily-papers-api.json")
    setup.cli("run", "--papers", hf_api, "--issue-id", "2099-W01")
    assert len(setup.digests_to(CONTROL)) == 2
    assert len(setup.digests_to(ADA)) == 1
    listed = json.loads(setup.cli("subscribers", "list", "--format", "json").stdout)
    [ada] = [row for row in listed if row["email"] == ADA]
    assert ada["suppressed"] == "unsubscribed" and ada["receives"] is False

    assert problems == [], problems
