"""DKIM signatures made by `newsletter.delivery.dkim`, checked by dkimpy (an independent one)."""

from __future__ import annotations

import base64
import email
from datetime import datetime, timezone
from email import policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter import resources
from newsletter.config import Config, parse_config
from newsletter.delivery.dkim import SIGNED_HEADERS, DkimSigner
from newsletter.delivery.message import Links, build_template
from newsletter.errors import MessageError
from newsletter.models import RenderedEmail
from newsletter.render.renderer import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    render_issue,
)
from newsletter.sources import read_source
from newsletter.topics.issue import build_issue

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
RECORD = b"v=DKIM1; k=rsa; p=" + base64.b64encode(
    KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
)


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"news._domainkey.example.org."
    return RECORD


def config(tmp_path: Path | None = None, extra: str = "") -> Config:
    return parse_config(
        resources.default_config_text()
        + "\nbase_url: https://news.example.org\nunsubscribe_mailto: leave@example.org\n"
        + extra,
        "config.yaml",
        tmp_path,
    )


SIGNER = DkimSigner("example.org", "news", PEM, clock=lambda: NOW.timestamp())


def link(token: str) -> Links:
    base = "https://news.example.org"
    return Links(f"{base}/unsubscribe?token={token}", f"{base}/preferences?token={token}")


def signed_headers(data: bytes) -> set[str]:
    msg = email.message_from_bytes(data, policy=policy.default)
    tags = dict(t.strip().split("=", 1) for t in str(msg["DKIM-Signature"]).split(";") if "=" in t)
    return {h.strip().lower() for h in tags["h"].split(":")}


@pytest.fixture(scope="module")
def rendered() -> RenderedEmail:
    c = config()
    issue = build_issue(
        read_source("sample", now=NOW),
        c.issue_settings(),
        now=NOW,
        issue_id="2026-W48",
        use_window=False,
    )
    return render_issue(issue, c.render_settings())


@pytest.mark.parametrize("fmt", ["html", "text"])
def test_signature_of_a_filled_template_verifies(rendered: RenderedEmail, fmt: str) -> None:
    template = build_template(rendered, config(), "2026-W48", fmt=fmt)  # type: ignore[arg-type]
    for i, (addr, name) in enumerate([("a@example.com", "Ann"), ("b@x.org", "Bö Lee")]):
        pieces = template.pieces(addr, name, link(f"tok{i}" * (i * 30 + 1)))
        signed = SIGNER.sign_pieces(template, pieces)
        assert signed.endswith(b"".join(pieces))
        assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;")
        assert dkim.verify(signed, dnsfunc=dns)
        # the generic path signs the same bytes the same way
        assert dkim.verify(SIGNER.sign(b"".join(pieces)), dnsfunc=dns)
        assert {h.lower() for h in SIGNED_HEADERS} <= signed_headers(signed)


def test_changing_a_signed_header_or_the_body_breaks_the_signature(
    rendered: RenderedEmail,
) -> None:
    template = build_template(rendered, config(), "2026-W48")
    signed = SIGNER.sign_pieces(template, template.pieces("a@example.com", None, link("tok")))
    assert dkim.verify(signed, dnsfunc=dns)
    for old, new in [
        (b"unsubscribe?token=tok>", b"unsubscribe?token=evil>"),  # List-Unsubscribe
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: x=y"),
        (b"To: a@example.com", b"To: b@example.com"),
        (b"token=3Dtok=", b"token=3Devil="),  # the link in the body
    ]:
        assert old in signed, old
        assert not dkim.verify(signed.replace(old, new, 1), dnsfunc=dns), old


# Bodies with runs of spaces and tabs, trailing blanks and empty lines: what relaxed
# canonicalisation changes, around the slots.
_PIECES = [" ", "  ", "\t", "a", "b c", "\n", "\n\n", "é", "=", "x" * 80, UNSUBSCRIBE_PLACEHOLDER]
_TEXT = st.lists(st.sampled_from(_PIECES + [PREFERENCES_PLACEHOLDER]), max_size=30).map("".join)


@settings(max_examples=60, deadline=None)
@given(text=_TEXT, html=_TEXT, fmt=st.sampled_from(["html", "text"]))
def test_any_body_signs_verifiably(text: str, html: str, fmt: str) -> None:
    rendered = RenderedEmail("Subject  with   spaces", html, text, "", 0, 0)
    template = build_template(
        rendered,
        _CONFIG,
        "2026-W01",
        fmt=fmt,  # type: ignore[arg-type]
        placeholders=(UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER),
    )
    signer = DkimSigner("example.org", "news", PEM)  # a fresh cache each time
    signed = signer.sign_pieces(template, template.pieces("a@example.com", "A  B", link("t")))
    assert dkim.verify(signed, dnsfunc=dns)


_CONFIG = config()


def test_signer_from_config_and_bad_keys(tmp_path: Path) -> None:
    (tmp_path / "dkim.pem").write_bytes(PEM)
    c = config(tmp_path, "dkim: {domain: example.org, selector: news, key_path: dkim.pem}\n")
    signer = DkimSigner.from_settings(c.mail_settings().dkim)
    assert signer is not None and signer.selector == "news"
    assert DkimSigner.from_settings(config(tmp_path).mail_settings().dkim) is None
    missing = config(tmp_path, "dkim: {domain: example.org, selector: s, key_path: nope.pem}\n")
    with pytest.raises(MessageError, match=r"dkim.key_path: .*nope.pem: cannot read"):
        DkimSigner.from_settings(missing.mail_settings().dkim)
    with pytest.raises(MessageError, match="not an unencrypted PEM private key"):
        DkimSigner("example.org", "s", b"-----BEGIN PRIVATE KEY-----\nnope\n")
    ec_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(MessageError, match="use an RSA key"):
        DkimSigner("example.org", "s", ec_key)
