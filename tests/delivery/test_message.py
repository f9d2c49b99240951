from __future__ import annotations

import email
import re
from collections import Counter
from datetime import datetime, timezone
from email import policy
from email.headerregistry import Address
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter import resources
from newsletter.config import Config, parse_config
from newsletter.delivery.message import (
    POLICY,
    Links,
    MessageError,
    MessageTemplate,
    build_template,
    to_header,
)
from newsletter.errors import ConfigError
from newsletter.models import Issue, RenderedEmail
from newsletter.render.renderer import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    render_issue,
)
from newsletter.sources import read_source
from newsletter.topics.issue import build_issue

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
UNSUB, PREFS = UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER
EXTRA = """
base_url: https://news.example.org
sender: {name: Papers of the week, address: digest@example.org}
unsubscribe_mailto: leave@example.org
"""


def make_config(extra: str = EXTRA, base_dir: Path | None = None) -> Config:
    return parse_config(resources.default_config_text() + extra, "config.yaml", base_dir)


@pytest.fixture(scope="module")
def sample() -> tuple[Config, Issue, RenderedEmail]:
    config = make_config()
    papers = read_source("sample", now=NOW)
    issue = build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )
    return config, issue, render_issue(issue, config.render_settings())


def links(email_addr: str, token: str = "tok") -> Links:
    base = "https://news.example.org"
    return Links(f"{base}/unsubscribe?token={token}", f"{base}/preferences?token={token}.p")


def norm(text: str) -> str:
    """Line ends as a decoded body has them: LF, and a final one (MIME bodies end a line)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


def expected(text: str, link: Links) -> str:
    return norm(text.replace(UNSUB, link.unsubscribe).replace(PREFS, link.preferences))


def parse(data: bytes) -> email.message.EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    for part in msg.walk():
        assert not part.defects, part.defects
    return msg


def body(msg: email.message.EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    return part.get_content().replace("\r\n", "\n")


def assert_line_limits(data: bytes) -> None:
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")  # no bare line feeds
    assert all(len(line) <= 998 for line in head.split(b"\r\n"))
    # bodies are quoted-printable: RFC 2045's 76 characters, boundaries and part headers included
    assert max(len(line) for line in rest.split(b"\r\n")) <= 76
    assert not re.search(rb"\r\n\.", rest)  # SMTP never needs to dot-stuff it


# -- the message a subscriber gets ---------------------------------------------------------------


def test_message_has_every_header_and_both_parts(
    sample: tuple[Config, Issue, RenderedEmail],
) -> None:
    config, issue, rendered = sample
    template = build_template(rendered, config.mail_settings(), issue.id, date=NOW)
    link = links("ann@example.com", "InNvbWVvbmUi.aQ3Tkw.Zx-_9")
    data = template.fill("ann@example.com", "Ann Lee", link)
    assert_line_limits(data)
    msg = parse(data)
    assert msg["From"] == "Papers of the week <digest@example.org>"
    assert msg["To"] == "Ann Lee <ann@example.com>"
    assert msg["Subject"] == rendered.subject
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert re.fullmatch(r"<2026-w48\.[0-9a-f]{24}@example\.org>", msg["Message-ID"])
    assert msg["List-Id"] == "Papers of the week <papers-of-the-week.example.org>"
    assert msg["List-Unsubscribe"] == (
        f"<{link.unsubscribe}>, <mailto:leave@example.org?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert body(msg, "plain") == expected(rendered.text, link)
    assert body(msg, "html") == expected(rendered.html, link)
    assert "%%" not in body(msg, "plain") + body(msg, "html")


def test_each_recipient_gets_own_links_and_message_id(
    sample: tuple[Config, Issue, RenderedEmail],
) -> None:
    config, issue, rendered = sample
    template = build_template(rendered, config.mail_settings(), issue.id)
    seen_ids = set()
    for i, addr in enumerate(["a@example.com", "b@example.net", "Ünïcode Name <c@x.org>"]):
        if "<" in addr:
            name, addr = "Ünïcode Name", "c@x.org"
        else:
            name = None
        link = links(addr, f"token{i}-" + "x" * (i * 70))
        msg = parse(template.fill(addr, name, link))
        assert msg["To"].addresses[0].addr_spec == addr
        assert msg["To"].addresses[0].display_name == (name or "")
        assert body(msg, "plain") == expected(rendered.text, link)
        assert body(msg, "html") == expected(rendered.html, link)
        assert msg["List-Unsubscribe"].startswith(f"<{link.unsubscribe}>")
        seen_ids.add(msg["Message-ID"])
    assert len(seen_ids) == 3
    # the same recipient gets the same id: a resend after a crash is recognisably the same mail
    again = parse(template.fill("a@example.com", None, links("a@example.com")))
    assert again["Message-ID"] in seen_ids


def test_text_format_is_a_single_plain_part(sample: tuple[Config, Issue, RenderedEmail]) -> None:
    config, issue, rendered = sample
    template = build_template(rendered, config.mail_settings(), issue.id, fmt="text")
    link = links("t@example.com")
    data = template.fill("t@example.com", None, link)
    assert_line_limits(data)
    msg = parse(data)
    assert msg.get_content_type() == "text/plain"
    assert not msg.is_multipart()
    assert msg.get_content().replace("\r\n", "\n") == expected(rendered.text, link)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert b"<html" not in data.lower()


def test_template_has_one_slot_per_placeholder(
    sample: tuple[Config, Issue, RenderedEmail],
) -> None:
    config, issue, rendered = sample
    template = build_template(rendered, config.mail_settings(), issue.id)
    slots = Counter(c for c in template.chunks if isinstance(c, str))
    assert slots["to"] == slots["message_id"] == slots["list_unsubscribe"] == 1
    assert slots["unsubscribe_text"] == rendered.text.count(UNSUB) >= 1
    assert slots["preferences_text"] == rendered.text.count(PREFS) >= 1
    assert slots["unsubscribe_html"] == rendered.html.count(UNSUB) >= 1
    assert slots["preferences_html"] == rendered.html.count(PREFS) >= 1
    data = template.fill("z@example.com", None, links("z@example.com"))
    assert len(data) > template.size > len(rendered.html)


# -- quoted-printable around the slots, for any text and any link ---------------------------------

# Pieces that stress the encoder: "=" and spaces (escaped), long runs (soft breaks), non-ASCII
# (multi-byte escapes), dots and line ends, and the placeholders anywhere among them.
_PIECES = list('ab .=\t\n-é€<>"&') + ["x" * 40, "y" * 73, "y" * 75, ".", "\n.", " \n", UNSUB, PREFS]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=40).map("".join)
_TOKEN = st.text(alphabet=st.sampled_from(list("AZaz09-_.=%&")), min_size=1, max_size=300)
_CONFIG = make_config()


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, html_text=_TEXT, token=_TOKEN, fmt=st.sampled_from(["html", "text"]))
def test_any_body_and_link_survive_the_encoding(
    text: str, html_text: str, token: str, fmt: str
) -> None:
    config = _CONFIG
    rendered = RenderedEmail(
        subject="Subject", html=html_text, text=text, preheader="", size_bytes=0, web_only=0
    )
    template = build_template(
        rendered,
        config,
        "2026-W01",
        fmt=fmt,
        placeholders=(UNSUB, PREFS),  # type: ignore[arg-type]
    )
    link = Links(f"https://n.example.org/u?token={token}", f"https://n.example.org/p?t={token}")
    data = template.fill("a@example.com", None, link)
    assert_line_limits(data)
    out = template.outgoing("a@example.com", None, link)
    assert out.data() == data
    assert b"".join(out.wire or ()) == smtp_stuffed(data)  # what SMTP DATA carries
    msg = parse(data)
    assert body(msg, "plain") == expected(text, link)
    if fmt == "html":
        escaped = Links(
            link.unsubscribe.replace("&", "&amp;").replace('"', "&quot;"),
            link.preferences.replace("&", "&amp;").replace('"', "&quot;"),
        )
        assert body(msg, "html") == expected(html_text, escaped)


def test_lines_starting_with_a_dot_are_encoded() -> None:
    config = make_config()
    html = "<style>\n.a{color:red}\n" + "y" * 75 + ".b\n</style>" + "z" * 74 + UNSUB
    rendered = RenderedEmail("S", html, ".text\n", "", 0, 0)
    template = build_template(
        rendered, config.mail_settings(), "2026-W01", placeholders=(UNSUB, PREFS)
    )
    data = template.fill("a@example.com", None, Links("https://e.org/." + "." * 80, "https://e"))
    assert_line_limits(data)
    assert body(parse(data), "html") == norm(html.replace(UNSUB, "https://e.org/." + "." * 80))


def smtp_stuffed(data: bytes) -> bytes:
    """RFC 5321 4.5.2: a line that starts with "." gets one more in front."""
    return b"\r\n".join(b"." + ln if ln.startswith(b".") else ln for ln in data.split(b"\r\n"))


def test_a_template_line_starting_with_a_dot_is_stuffed_once_for_smtp() -> None:
    # build_template encodes such lines away; a template made otherwise may still hold them.
    template = MessageTemplate(
        chunks=(
            b"Subject: s\r\n",
            "to",
            b"\r\n.first\r\nplain\r\n..two\r\n",
            "unsubscribe_text",
            b".after a slot\r\n",
        ),
        body_index=2,
        subject="s",
        format="text",
        mailto=None,
        domain="example.org",
        issue_id="2026-W01",
    )
    assert template.wire_chunks[2] == b"\r\n..first\r\nplain\r\n...two\r\n"  # prepared once
    for addr in ("a@example.com", "b@example.com"):
        out = template.outgoing(addr, None, links(addr))
        assert out.data() == template.fill(addr, None, links(addr))
        assert out.data().count(b"\r\n.") == 3
        assert b"".join(out.wire or ()) == smtp_stuffed(out.data())


# -- headers cannot be injected ------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["Hi\r\nBcc: victim@example.com", "Hi\nBcc: x@y.org", "Hi\rX"])
def test_line_breaks_in_subject_are_refused(bad: str) -> None:
    rendered = RenderedEmail(bad, "<p>x</p>", "x", "", 0, 0)
    with pytest.raises(MessageError, match="remove line breaks"):
        build_template(rendered, make_config(), "2026-W01", placeholders=(UNSUB, PREFS))


def test_line_breaks_in_sender_name_are_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match="sender.name: a sender name must be one line"):
        make_config('sender: {name: "Digest\\r\\nBcc: victim@example.com"}\n')


@pytest.mark.parametrize(
    ("name", "addr"),
    [("Ann\r\nBcc: victim@example.com", "a@example.com"), (None, "a@example.com\r\nBcc: v@x.org")],
)
def test_line_breaks_in_a_recipient_are_refused(name: str | None, addr: str) -> None:
    with pytest.raises(MessageError, match="not a usable address or name"):
        to_header(addr, name)


_NAMES = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("Aa Zz09.-'\"(),:;@<>é!#~")), max_size=40),
    st.sampled_from(["Ann", "Ann Lee", "O'Brien", "Doe, John", "a" * 80, "Dr. Who", "Jöhn"]),
)


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, local=st.sampled_from(["a", "ann.lee", "x+tag", "o'neil", "a" * 60]))
def test_to_header_matches_the_email_package(name: str | None, local: str) -> None:
    addr = f"{local}@example.com"
    if name is not None and not name.strip():
        name = None
    try:
        reference = (
            POLICY.header_factory("To", str(Address(name or "", addr_spec=addr)))
            .fold(policy=POLICY)
            .encode()
        )
    except (ValueError, IndexError):
        with pytest.raises(MessageError):
            to_header(addr, name)
        return
    assert to_header(addr, name) == reference
