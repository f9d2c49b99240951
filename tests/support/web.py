"""Shared pieces of the web tests: a site on a temp folder, a clock to move, mail to read."""

from __future__ import annotations

import email
import mailbox
import re
import sqlite3
import textwrap
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.audience.subscribers import audience, load_subscribers
from newsletter.audience.tokens import SecretKeys, make_token
from newsletter.config import Config, parse_config
from newsletter.models import Issue, Paper, Subscriber
from newsletter.store.state import Store
from newsletter.web.app import create_app
from tests.support.clock import Clock

with warnings.catch_warnings():
    # Starlette asks for the httpx2 package but works with httpx; the warning is about that only
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

KEYS = SecretKeys(["test-secret-key-0123456789abcdef"])
BASE_URL = "http://news.test"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
TOPICS = ("Diffusion", "Agents", "Robotics")
ADDRESS = "ada@example.org"

CONFIG = textwrap.dedent(
    """\
    title: Papers & Co
    description: The week's papers, <grouped> by topic.
    base_url: {base_url}
    state: state.db
    subscribers: subscribers.yaml
    sender:
      name: Papers Desk
      address: digest@news.test
    delivery:
      transport: outbox
      outbox: outbox
    topics:
      - name: Diffusion
        keywords: [diffusion, image generation]
      - name: Agents
        keywords: [agent, agents, tool use]
      - name: Robotics
        keywords: [robot, robotics, manipulation]
    """
)


@dataclass
class Site:
    folder: Path
    config: Config
    store: Store
    clock: Clock
    client: TestClient
    app: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        return self.folder / "outbox"

    def send_queued(self) -> int:
        """Send the queued confirmations that are due, as the app's mail worker does."""
        return int(self.app.state.web.mailer.run_once())

    def mails(self) -> list[EmailMessage]:
        """Every message in the outbox Maildir, oldest first, once the due queue went out."""
        self.send_queued()
        if not self.outbox.exists():
            return []
        box = mailbox.Maildir(self.outbox, create=False)
        found = []
        for key in box.iterkeys():
            with box.get_file(key) as f:
                message = email.message_from_binary_file(f, policy=policy.default)
            # two messages sent in one go carry the same Date: then the order they were
            # written in, which the name Maildir gives each holds (this process's count, "Q")
            written = re.search(r"Q(\d+)", key)
            assert written is not None, key
            found.append((message["Date"].datetime, int(written[1]), message))
        return [message for _, _, message in sorted(found, key=lambda f: f[:2])]

    def snapshot(self) -> tuple[list[str], list[str]]:
        """The whole state database as SQL, and the outbox's file names."""
        with sqlite3.connect(self.folder / "state.db") as conn:
            dump = list(conn.iterdump())
        files = sorted(p.name for p in self.outbox.rglob("*") if p.is_file())
        return dump, files

    def client_for(self, host: str) -> TestClient:
        return TestClient(self.app, base_url="http://testserver", client=(host, 40000))

    def suppression(self, address: str) -> tuple[str, str | None] | None:
        with sqlite3.connect(self.folder / "state.db") as conn:
            row = conn.execute(
                "SELECT reason, detail FROM suppressions WHERE email = ?", (address,)
            ).fetchone()
        return None if row is None else (row[0], row[1])


def make_site(folder: Path, extra_yaml: str = "", keys: SecretKeys = KEYS) -> Site:
    text = CONFIG.format(base_url=BASE_URL) + textwrap.dedent(extra_yaml)
    folder.mkdir(parents=True, exist_ok=True)
    config = parse_config(text, "config.yaml", folder)
    clock = Clock(T0)
    store = Store.open(folder / "state.db", clock=clock)
    app = create_app(config, keys=keys, store=store)
    client = TestClient(app, base_url="http://testserver", client=("198.51.100.7", 40000))
    return Site(folder, config, store, clock, client, app)


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return part.get_content()  # type: ignore[no-any-return]


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return part.get_content()  # type: ignore[no-any-return]


def link_in(msg: EmailMessage, path: str) -> str:
    """Return the path and query of the first `BASE_URL/<path>?token=` link in the text part."""
    match = re.search(rf"{re.escape(BASE_URL)}/{path}\?token=[\w.\-]+", text_part(msg))
    assert match, f"no /{path} link in:\n{text_part(msg)}"
    parts = urlsplit(match.group(0))
    return f"{parts.path}?{parts.query}"


def form_action(html: str) -> list[str]:
    """Return the action of every POST form on a page."""
    return [
        a.replace("&amp;", "&") for a in re.findall(r'<form method="post" action="([^"]*)"', html)
    ]


def paper(i: int, title: str, abstract: str = "", **kw: Any) -> Paper:
    return Paper(
        id=f"2611.{i:05d}",
        title=title,
        authors=(f"Author {i}",),
        abstract=abstract,
        url=f"https://arxiv.org/abs/2611.{i:05d}",
        published=T0 - timedelta(days=2),
        **kw,
    )


def sample_issue(config: Config, issue_id: str = "2026-W48") -> Issue:
    """An issue with more papers than the email shows (max_per_topic caps each section)."""
    from newsletter.topics.issue import build_issue

    papers = [paper(i, f"Diffusion model number {i} for image generation") for i in range(1, 6)]
    papers += [paper(10 + i, f"Tool use agents, part {i}") for i in range(1, 4)]
    papers += [paper(20, 'Robot manipulation <with> & tricky "characters"')]
    papers += [paper(30, "Something unrelated entirely")]
    return build_issue(papers, config.issue_settings(), now=T0, issue_id=issue_id, use_window=False)


def sign_up(site: Site, address: str = ADDRESS, **fields: object) -> Any:
    """Post the sign-up form as a browser on this site would."""
    data = {"email": address, "name": "", **fields}
    return site.client.post("/subscribe", data=data)


def token(site: Site, purpose: str, address: str = ADDRESS, keys: SecretKeys = KEYS) -> str:
    """Make a token as an email sent at the site's current time would carry it.

    An unsubscribe or preferences token signs the address's recipient id (made in the state if
    it has none yet, as a send does); a confirm token signs a new sign-up request of the
    address with its current settings.
    """
    if purpose == "confirm":
        stored = site.store.get_subscriber(address)
        who = stored.subscriber if stored is not None else Subscriber(address, source="web")
        value = site.store.signups.open(who, timedelta(0))
        assert value is not None
    else:
        value = site.store.recipients.id_of(address)
    return make_token(purpose, value, keys, clock=lambda: site.clock().timestamp())  # type: ignore[arg-type]


def legacy_token(purpose: str, address: str = ADDRESS, keys: SecretKeys = KEYS) -> str:
    """A token as links made before recipient ids carried it: the address itself, signed."""
    return make_token(purpose, address, keys, clock=lambda: T0.timestamp())  # type: ignore[arg-type]


def audience_emails(site: Site) -> set[str]:
    """The addresses the next send would reach (file and store, less suppressions)."""
    listed = load_subscribers(site.config.subscribers_path, site.config.topic_names).subscribers
    return {s.email for s in audience(listed, site.store)}
