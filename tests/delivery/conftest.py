"""The delivery tests' issue (the sample, week 2026-W48), a fresh state for each test, and the two
ways an SMTP send runs (`engine`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from newsletter import resources
from newsletter.config import parse_config
from newsletter.delivery.smtp import SmtpTransport
from newsletter.models import Issue
from newsletter.sources import read_source
from newsletter.store.state import Store
from newsletter.topics.issue import build_issue
from tests.support.sending import NOW


@pytest.fixture(scope="session")
def issue() -> Issue:
    config = parse_config(resources.default_config_text())
    papers = read_source("sample", now=NOW)
    return build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state.db") as s:
        yield s


@pytest.fixture(params=["one thread", "a thread per connection"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test both ways: one thread serving every connection (what a relay offering
    PIPELINING over plain connections gets), and a thread per connection (any other)."""
    if request.param == "a thread per connection":
        monkeypatch.setattr(SmtpTransport, "loop_connections", lambda self: None)
    return str(request.param)
