from __future__ import annotations

import email
from email import policy
from pathlib import Path

from newsletter.delivery.transport import SendResult, Transport
from newsletter.errors import TransportError
from newsletter.web.confirm_mail import build_confirmation, send_confirmation
from newsletter.web.pages import template_environment
from tests.support.web import T0, make_site

LINK = "http://news.test/confirm?token=abc.def-ghi_jkl"


def test_the_message_is_text_and_html_with_the_link_and_no_name(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    data = build_confirmation(
        site.config, template_environment(site.config), "ada@example.org", LINK, hours=48, date=T0
    )
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    msg = email.message_from_bytes(data, policy=policy.default)
    assert msg["From"] == "Papers Desk <digest@news.test>"
    assert msg["To"] == "ada@example.org"
    assert msg["Subject"] == "Confirm your subscription to Papers & Co"
    assert msg["Date"] == "Mon, 23 Nov 2026 09:00:00 +0000"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@news.test>")
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert LINK in text and f'href="{LINK}"' in html
    assert "48 hours" in text and "48 hours" in html
    assert "Papers & Co" in text  # the text twin is not HTML-escaped
    assert "Papers &amp; Co" in html


class Refusing(Transport):
    def send(self, envelope_from: str, rcpt: str, data: bytes) -> SendResult:
        return SendResult("bounce", "550 no such user", 550)


class Broken(Transport):
    def open(self) -> None:
        raise TransportError("smtp.example: connection refused")


def test_a_failed_send_is_reported_not_raised(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    env = template_environment(site.config)
    refused = send_confirmation(site.config, env, Refusing, "a@example.org", LINK, hours=48)
    assert (refused.status, refused.detail) == ("bounce", "550 no such user")
    broken = send_confirmation(site.config, env, Broken, "a@example.org", LINK, hours=48)
    assert broken.status == "fail" and "connection refused" in broken.detail


def test_an_international_address_goes_as_smtputf8(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    data = build_confirmation(
        site.config, template_environment(site.config), "jörg@example.org", LINK, hours=48
    )
    assert "To: jörg@example.org".encode() in data
