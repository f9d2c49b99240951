"""The sample issue, as a subscriber receives it, scores low with SpamAssassin's local rules.

Needs the Debian package `spamassassin` (scripts/install-test-deps installs it). Network tests
(DNS blocklists, DKIM lookups) are off (`-L`), so this judges the message itself: headers,
MIME structure, HTML and text.
"""

from __future__ import annotations

import mailbox
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter import resources
from newsletter.audience.tokens import SecretKeys
from newsletter.config import parse_config
from newsletter.delivery.outbox import OutboxTransport
from newsletter.job import send_rendered
from newsletter.models import Subscriber
from newsletter.sources import read_source
from newsletter.store.state import Store
from newsletter.topics.issue import build_issue

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
MAX_SCORE = 0.0  # nothing in the message itself counts against it
STATUS = re.compile(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=(\S*)", re.M)


def spamassassin() -> str:
    found = shutil.which("spamassassin") or (
        "/usr/bin/spamassassin" if Path("/usr/bin/spamassassin").exists() else None
    )
    if found is None:
        pytest.fail(
            "spamassassin is not installed: run scripts/install-test-deps "
            "(Debian package `spamassassin`)"
        )
    return found


def score(message: bytes, home: Path) -> tuple[float, list[str]]:
    """Run the local rules on a message; return the score and the rules that hit."""
    result = subprocess.run(
        [spamassassin(), "-L", "-t"],
        input=message,
        capture_output=True,
        timeout=120,
        env={**os.environ, "HOME": str(home)},  # its first run writes ~/.spamassassin
        check=True,
    )
    headers = result.stdout.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    headers = re.sub(r"\n[ \t]+", "", headers)  # unfold: the rule list spans lines
    match = STATUS.search(headers)
    assert match, headers
    rules = [r for r in match.group(2).split(",") if r and r != "none"]
    return float(match.group(1)), rules


@pytest.fixture(scope="module")
def delivered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Deliver the sample issue to a few kinds of subscriber; return each one's message."""
    folder = tmp_path_factory.mktemp("spam")
    config = parse_config(
        resources.default_config_text()
        + "\nbase_url: https://news.example.org\n"
        + "sender: {name: Papers of the week, address: digest@example.org}\n"
        + "unsubscribe_mailto: leave@example.org\n",
        "config.yaml",
        folder,
    )
    papers = read_source("sample", now=NOW)
    issue = build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )
    audience = [
        Subscriber("ann.lee@example.com", "Ann Lee"),
        Subscriber("bob@example.net", topics=frozenset({issue.sections[0].topic})),
        Subscriber("text@example.org", "Text Reader", format="text"),
    ]
    with Store.open(folder / "state.db") as store:
        send_rendered(
            issue,
            config,
            audience,
            store,
            OutboxTransport(folder / "outbox"),
            keys=SecretKeys(["spam-test-key-0123456789"]),
        )
    box = mailbox.Maildir(folder / "outbox", create=False)
    out = {}
    for key in box.iterkeys():
        data = box.get_bytes(key)
        rcpt = re.search(rb"^Delivered-To: (\S+)$", data, re.M)
        assert rcpt
        out[rcpt.group(1).decode()] = data
    assert len(out) == 3
    return out


@pytest.mark.parametrize(
    "rcpt", ["ann.lee@example.com", "bob@example.net", "text@example.org"], ids=str
)
def test_sample_issue_scores_low(delivered: dict[str, bytes], rcpt: str, tmp_path: Path) -> None:
    points, rules = score(delivered[rcpt], tmp_path)
    assert points <= MAX_SCORE, f"score {points} > {MAX_SCORE}; rules hit: {', '.join(rules)}"


def test_the_rules_see_a_well_formed_list_message(
    delivered: dict[str, bytes], tmp_path: Path
) -> None:
    _, rules = score(delivered["ann.lee@example.com"], tmp_path)
    # structural problems would show up as these; none may hit
    bad = {
        "MISSING_MID",
        "MISSING_DATE",
        "MISSING_FROM",
        "MISSING_SUBJECT",
        "MIME_HTML_ONLY",
        "MIME_QP_LONG_LINE",
        "MPART_ALT_DIFF",
        "HTML_MIME_NO_HTML_TAG",
        "INVALID_DATE",
        "FROM_EXCESS_BASE64",
        "HEADER_FROM_DIFFERENT_DOMAINS",
        "MIME_HEADER_CTYPE_ONLY",
        "TVD_SPACE_RATIO",
        # a hidden preheader in white on white reads as hidden text
        "HTML_FONT_LOW_CONTRAST",
    }
    assert not bad & set(rules), rules
