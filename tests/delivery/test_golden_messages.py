"""Golden messages: the whole .eml a subscriber receives, for three kinds of issue and reader.

Each case runs the real send path (issue -> render -> message -> outbox) and compares the
message, byte for byte after normalising what changes from run to run (the MIME boundaries, the
Date header and the signed tokens, whose signatures carry the time), with
`tests/data/golden/<case>/message.eml`. A change to the message shows as a diff; the expected
files are rewritten only with `pytest --update-golden`.
"""

from __future__ import annotations

import difflib
import mailbox
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.audience.tokens import SecretKeys
from newsletter.config import parse_config
from newsletter.delivery.outbox import OutboxTransport
from newsletter.job import send_rendered
from newsletter.models import Subscriber
from newsletter.sources import read_source
from newsletter.store import Store
from newsletter.topics import build_issue
from tests.support.paths import GOLDEN, SAMPLES

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
KEYS = SecretKeys(["golden-key-0123456789abcdef"])
SITE = (
    "base_url: https://news.example.org\n"
    "sender: {name: Weekly Papers, address: digest@example.org}\n"
)

# case -> (papers, subscriber)
CASES = {
    "sample": ("sample", Subscriber("ann.lee@example.com", "Ann Lee")),
    "hf-api": (
        str(SAMPLES / "hf-daily-papers-api.json"),
        Subscriber(
            "zoe@example.net",
            "Zoë Åberg",
            topics=frozenset({"LLM Reasoning", "Multimodal & Video"}),
        ),
    ),
    "text-only": ("sample", Subscriber("plain@example.org", format="text")),
}

_BOUNDARY = re.compile(rb"={15}\d+==")
_DATE = re.compile(rb"^Date: .*$", re.MULTILINE)
# A token is URL-safe base64 with dots; in a quoted-printable body it may run over soft line
# breaks (`=` at the end of a line) and a dot that starts a line is written `=2E`. Both are kept,
# so the line structure stays as sent; every token character becomes `x`.
_TOKEN = re.compile(rb"(token(?:=3D|=))((?:[A-Za-z0-9_.-]|=\n|=2E)+)")
_TOKEN_PART = re.compile(rb"=\n|=2E|[A-Za-z0-9_.-]")


def _blank(run: bytes) -> bytes:
    return _TOKEN_PART.sub(lambda t: t.group(0) if t.group(0)[:1] == b"=" else b"x", run)


def normalise(data: bytes) -> bytes:
    data = _BOUNDARY.sub(b"===============BOUNDARY==", data)
    data = _DATE.sub(b"Date: (normalised)", data)
    return _TOKEN.sub(lambda m: m.group(1) + _blank(m.group(2)), data)


def delivered_message(case: str, tmp_path: Path) -> bytes:
    source, subscriber = CASES[case]
    config = parse_config(
        (GOLDEN / "sample" / "config.yaml").read_text(encoding="utf-8") + SITE,
        "golden config.yaml",
        tmp_path,
    )
    issue = build_issue(
        read_source(source, now=NOW),
        config.issue_settings(),
        now=NOW,
        issue_id="2026-W48",
        use_window=False,
    )
    with Store.open(tmp_path / "state.db") as store:
        report = send_rendered(
            issue, config, [subscriber], store, OutboxTransport(tmp_path / "out"), keys=KEYS
        )
    assert (report.sent, report.failed) == (1, 0)
    (key,) = mailbox.Maildir(tmp_path / "out", create=False).keys()
    return mailbox.Maildir(tmp_path / "out", create=False).get_bytes(key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_delivered_message_matches_its_golden_file(
    case: str, tmp_path: Path, update_golden: bool
) -> None:
    actual = normalise(delivered_message(case, tmp_path))
    path = GOLDEN / case / "message.eml"
    if update_golden:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
    expected = path.read_bytes()
    if actual != expected:
        diff = difflib.unified_diff(
            expected.decode("utf-8", "replace").splitlines(),
            actual.decode("utf-8", "replace").splitlines(),
            str(path),
            "delivered now",
            lineterm="",
        )
        pytest.fail(
            f"{case}: the message differs from {path} (pytest --update-golden if intended):\n"
            + "\n".join(list(diff)[:60])
        )


def test_normalising_keeps_what_a_reader_sees() -> None:
    """Only the parts that change between runs are replaced; the rest stays byte for byte."""
    raw = (
        b'Content-Type: multipart/alternative; boundary="===============1234567890=="\n'
        b"Date: Thu, 26 Nov 2026 08:00:00 +0000\n"
        b"List-Unsubscribe: <https://n.example/unsubscribe?token=ImFi.aB-c_d>\n\n"
        b'<a href=3D"https://n.example/unsubscribe?token=3DImFi.a=\nB-c">Unsubscribe</a>\n'
        b"=2EKeep=2E this\n"
    )
    assert normalise(raw) == (
        b'Content-Type: multipart/alternative; boundary="===============BOUNDARY=="\n'
        b"Date: (normalised)\n"
        b"List-Unsubscribe: <https://n.example/unsubscribe?token=xxxxxxxxxxx>\n\n"
        b'<a href=3D"https://n.example/unsubscribe?token=3Dxxxxxx=\nxxx">Unsubscribe</a>\n'
        b"=2EKeep=2E this\n"
    )
