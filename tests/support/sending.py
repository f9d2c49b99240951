"""What the delivery tests share: a config sending to a test SMTP server, people, one delivery."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from newsletter import resources
from newsletter.audience.tokens import SecretKeys
from newsletter.config import Config, parse_config
from newsletter.delivery.send import DeliveryReport, RetryPolicy
from newsletter.delivery.smtp import SmtpTransport
from newsletter.job import send_rendered
from newsletter.models import Issue, Subscriber
from newsletter.store.state import Store
from tests.support.smtp_server import SmtpServer

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)  # the sample's week is 2026-W48
KEYS = SecretKeys(["test-key-0123456789abcdef"])
FAST = RetryPolicy(backoff=0.05, max_backoff=0.2)  # in-run retries within a test's patience


def make_config(tmp_path: Path, extra: str = "") -> Config:
    """The default config with a base URL and a sender, plus `extra` YAML."""
    text = resources.default_config_text() + (
        "\nbase_url: https://news.example.org\n"
        "sender: {name: Weekly Papers, address: digest@example.org}\n" + extra
    )
    return parse_config(text, "config.yaml", tmp_path)


def smtp_config(tmp_path: Path, server: SmtpServer, extra: str = "", **smtp: object) -> Config:
    """A config delivering to `server` (no TLS), `smtp` overriding its settings, `extra` under
    `delivery:`."""
    values = {"host": "127.0.0.1", "port": server.port, "security": "none", "timeout": 5}
    values.update(smtp)
    inner = ", ".join(f"{k}: {v}" for k, v in values.items())
    return make_config(tmp_path, f"delivery:\n  transport: smtp\n  smtp: {{{inner}}}\n  {extra}\n")


def smtp_deliver(
    issue: Issue, config: Config, audience: list[Subscriber], store: Store, **options: Any
) -> DeliveryReport:
    """Deliver through the config's SMTP server with the test keys and quick retries."""
    options = {"keys": KEYS, "retry": FAST, **options}
    return send_rendered(
        issue, config, audience, store, SmtpTransport(config.delivery.smtp), **options
    )


def people(n: int, **kw: Any) -> list[Subscriber]:
    """n subscribers, reader000@example.com onwards."""
    return [Subscriber(f"reader{i:03d}@example.com", f"Reader {i}", **kw) for i in range(n)]
