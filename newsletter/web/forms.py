"""Read and check what the web forms post: the sign-up form and the preferences form.

Every problem becomes a message shown next to its field; nothing here raises for bad input.
Line breaks and other control characters are refused outright in an address or a name: both
end up in mail headers, where a line break would start a header of the sender's choosing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from newsletter.audience.subscribers import normalize_email
from newsletter.models import Subscriber

log = logging.getLogger(__name__)

HONEYPOT = "website"  # a field people never see (hidden by CSS), which form-filling bots fill
MAX_NAME = 100
MAX_EMAIL = 254  # RFC 5321's limit on a forward path, less the angle brackets
FORMATS = ("html", "text")
# any control character (CR and LF among them), and the other characters str.splitlines breaks on
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


@dataclass(frozen=True)
class SignupForm:
    """What the sign-up form posted, kept as typed so the page can show it again."""

    email: str = ""
    name: str = ""
    topics: tuple[str, ...] = ()
    honeypot: str = ""

    @property
    def is_bot(self) -> bool:
        return bool(self.honeypot.strip())


@dataclass(frozen=True)
class Checked:
    """A checked form: the subscriber it describes, or the problems per field."""

    subscriber: Subscriber | None
    errors: dict[str, str] = field(default_factory=dict)


def _one(form: object, name: str) -> str:
    value = form.get(name)  # type: ignore[attr-defined]
    return value if isinstance(value, str) else ""


def _many(form: object, name: str) -> tuple[str, ...]:
    values = form.getlist(name)  # type: ignore[attr-defined]
    return tuple(v for v in values if isinstance(v, str))


def read_signup(form: object) -> SignupForm:
    """Take the sign-up fields out of posted form data (a Starlette `FormData`)."""
    return SignupForm(
        email=_one(form, "email"),
        name=_one(form, "name"),
        topics=_many(form, "topics"),
        honeypot=_one(form, HONEYPOT),
    )


def check_email(raw: str, blocked_domains: Sequence[str] = ()) -> tuple[str | None, str | None]:
    """Return (normalised address, None) or (None, the problem in words for the form)."""
    value = raw.strip()
    if not value:
        return None, "Enter your email address."
    if _CONTROL.search(value):
        return None, "An email address cannot contain line breaks or control characters."
    if len(value) > MAX_EMAIL:
        return None, f"An email address has at most {MAX_EMAIL} characters."
    try:
        address = normalize_email(value)
    except ValueError as e:
        return None, f"That is not a valid email address: {e}"
    if is_blocked(address, blocked_domains):
        return None, "Sign-ups from this email domain are not accepted; use another address."
    return address, None


def is_blocked(address: str, blocked_domains: Iterable[str]) -> bool:
    """Return True when the address's domain, or a domain it is under, is on the blocklist."""
    domain = address.rpartition("@")[2].lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in blocked_domains)


def check_name(raw: str) -> tuple[str | None, str | None]:
    """Return (name or None when empty, None) or (None, the problem in words)."""
    if _CONTROL.search(raw):
        return None, "A name must be one line, without line breaks or control characters."
    value = " ".join(raw.split())
    if len(value) > MAX_NAME:
        return None, f"A name has at most {MAX_NAME} characters."
    return value or None, None


def check_topics(
    chosen: Iterable[str], topic_names: Sequence[str]
) -> tuple[frozenset[str] | None, str | None]:
    """Return (topics, None) or (None, the problem); no box or every box means all topics.

    "All topics" is stored as None, so a topic added to the config later reaches them too.
    """
    known = {name.casefold(): name for name in topic_names}
    picked: set[str] = set()
    for name in chosen:
        topic = known.get(name.strip().casefold())
        if topic is None:
            return None, "Choose topics from the list."
        picked.add(topic)
    if not picked or len(picked) == len(known):
        return None, None
    return frozenset(picked), None


def check_signup(
    form: SignupForm, topic_names: Sequence[str], blocked_domains: Sequence[str] = ()
) -> Checked:
    """Check a sign-up; the subscriber it returns is new, from the web, and not yet confirmed."""
    errors: dict[str, str] = {}
    address, problem = check_email(form.email, blocked_domains)
    if problem:
        errors["email"] = problem
    name, problem = check_name(form.name)
    if problem:
        errors["name"] = problem
    topics, problem = check_topics(form.topics, topic_names)
    if problem:
        errors["topics"] = problem
    if errors or address is None:
        return Checked(None, errors)
    return Checked(Subscriber(address, name, topics, "html", "web"))


@dataclass(frozen=True)
class PreferencesForm:
    action: Literal["save", "unsubscribe", "resubscribe"]
    topics: frozenset[str] | None
    format: Literal["html", "text"]
    errors: dict[str, str]


def read_preferences(form: object, topic_names: Sequence[str]) -> PreferencesForm:
    """Read the preferences form: which button, which topics, which format."""
    action = _one(form, "action")
    if action not in ("unsubscribe", "resubscribe"):
        action = "save"
    errors: dict[str, str] = {}
    topics, problem = check_topics(_many(form, "topics"), topic_names)
    if problem:
        errors["topics"] = problem
    fmt = _one(form, "format") or "html"
    if fmt not in FORMATS:
        errors["format"] = "Choose HTML or plain text."
        fmt = "html"
    return PreferencesForm(action, topics, fmt, errors)  # type: ignore[arg-type]
