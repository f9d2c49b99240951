"""The confirmation email of a web sign-up (double opt-in), sent through the configured transport.

It says only what the site knows for sure: the newsletter's name, the link and how long it works.
It never repeats the name typed into the form: anyone can type anything there, and a mail that
quotes it would let strangers send their words from our address to any inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from newsletter.delivery.message import from_address
from newsletter.delivery.transport import SendResult, Transport
from newsletter.errors import MessageError, NewsletterError, TransportError

if TYPE_CHECKING:
    import jinja2

    from newsletter.config import Config

log = logging.getLogger(__name__)

TEXT_TEMPLATE = "confirm_email.txt"
HTML_TEMPLATE = "confirm_email.html"


def subject(config: Config) -> str:
    return f"Confirm your subscription to {config.title}"


def build_confirmation(
    config: Config,
    env: jinja2.Environment,
    email: str,
    link: str,
    *,
    hours: float,
    date: datetime | None = None,
) -> bytes:
    """Return the confirmation message for `email` as bytes with CRLF line ends."""
    sender = config.sender
    context = {
        "title": config.title,
        "description": config.description,
        "link": link,
        "hours": int(hours) if float(hours).is_integer() else hours,
        "home": config.base_url,
        "organisation": config.organisation,
    }
    # an address with a non-ASCII local part can only travel as SMTPUTF8 (RFC 6531)
    policy = email_policy.SMTP if email.isascii() else email_policy.SMTPUTF8
    msg = EmailMessage(policy=policy)
    try:
        msg["From"] = from_address(config.mail_settings())
        # the email package cannot build an Address with a non-ASCII local part; the string
        # form is parsed the same way, and the address was validated by the form already
        msg["To"] = Address(addr_spec=email) if email.isascii() else email
        if len(msg["To"].addresses) != 1:
            raise ValueError("not one address")
        msg["Subject"] = subject(config)
    except (ValueError, IndexError) as e:
        raise MessageError(
            f"confirmation to {email}: not usable in a header ({e}); "
            "check `title` and `sender` in the config"
        ) from e
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = make_msgid("confirm", domain=sender.domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(env.get_template(TEXT_TEMPLATE).render(context))
    msg.add_alternative(env.get_template(HTML_TEMPLATE).render(context), subtype="html")
    return msg.as_bytes()


def send_confirmation(
    config: Config,
    env: jinja2.Environment,
    transport_factory: Callable[[], Transport],
    email: str,
    link: str,
    *,
    hours: float,
    date: datetime | None = None,
) -> SendResult:
    """Build and send one confirmation email; return what became of it, never raising.

    It runs after the page has answered, so a slow or failing mail server shows in the log
    and not in the page (which must read the same whether or not anything was sent).
    """
    try:
        data = build_confirmation(config, env, email, link, hours=hours, date=date)
        with transport_factory() as transport:
            result = transport.send(config.sender.address, email, data)
    except (NewsletterError, TransportError, OSError) as e:
        log.error("confirmation to %s not sent: %s", email, e)
        return SendResult("fail", str(e))
    if result.ok:
        log.info("confirmation sent to %s", email)
    else:
        log.warning("confirmation to %s not sent (%s): %s", email, result.status, result.detail)
    return result
