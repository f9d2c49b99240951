"""What an SMTP refusal means: the recipient's dead mailbox, a deferral, or a problem of ours.

Only a reply that says the recipient's mailbox does not exist is a hard bounce that suppresses
the address: the enhanced status codes (RFC 3463) X.1.1, X.1.2, X.1.3, X.1.6 and X.1.10, or,
from a server that gives no specific code, a 550/551/553 to RCPT whose text says so ("user
unknown", "no such user", "mailbox unavailable", "does not exist"). This is listmonk's rule (one
hard bounce blocklists, soft bounces never do) and Mailman 3's (only a permanent failure counts
as a bounce, a temporary one is ignored), with the line drawn by RFC 3463's codes:

- 4xx, and X.2.2 "mailbox full" even with a 5xx code, are deferrals: tried again later.
- A refusal about our sender (X.1.7, X.1.8, a refused MAIL), the relay's policy (X.7.x), the
  message (X.2.3 and X.3.4 size, X.6.x content) or a system (X.3.x, X.4.x, X.5.x) fails the
  message and suppresses no one. Said to many recipients alike, it is about us: delivery's
  circuit breaker stops the run and `advice` says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsletter.delivery.transport import SendResult

# a reply's enhanced status code, "5.1.1"; the numbers as RFC 3463 defines them
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
# the codes that say the recipient's mailbox does not exist (RFC 3463, RFC 3886 for X.1.10)
_NO_MAILBOX_CODES = frozenset({(1, 1), (1, 2), (1, 3), (1, 6), (1, 10)})
# what servers without a specific code say when the mailbox itself is the problem
_NO_MAILBOX_TEXT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|mailbox (unavailable|not found|"
    r"does not exist)|recipient (unknown|not found|address rejected)|invalid recipient|"
    r"does not exist|not our customer|undeliverable address",
    re.IGNORECASE,
)
# a text that speaks of the sender is about us, whatever else it says ("sender domain does not
# exist", "Sender address rejected")
_ABOUT_SENDER = re.compile(r"\bsender\b|\bmail from\b|\bsending (domain|address)\b", re.I)
_ADDRESS = re.compile(r"<[^<>\s]*>|[^\s<>@]+@[^\s<>]+")


@dataclass(frozen=True, slots=True)
class Reply:
    """One refusal as the transport reported it: "RCPT: 550 5.1.8 <a@b>: Sender ..." parsed."""

    stage: str  # MAIL, RCPT or DATA
    code: int
    enhanced: tuple[int, int, int] | None  # (5, 1, 8)
    text: str  # after the code and the enhanced code

    @classmethod
    def parse(cls, detail: str) -> Reply | None:
        """Read a `SendResult.detail` back; None for anything but a server's refusal."""
        stage, sep, rest = detail.partition(": ")
        if not sep or stage not in ("MAIL", "RCPT", "DATA"):
            return None
        code, _, text = rest.partition(" ")
        if not (code.isdigit() and len(code) == 3):
            return None
        match = _ENHANCED.match(text)
        enhanced = None
        if match:
            enhanced = (int(match[1]), int(match[2]), int(match[3]))
            text = text[match.end() :].lstrip()
        return cls(stage, int(code), enhanced, text)

    @property
    def key(self) -> tuple[str, int, str]:
        """What makes two refusals "the same": stage, code and enhanced code (or the text with
        the addresses taken out, when the server gives no enhanced code)."""
        if self.enhanced is not None:
            return self.stage, self.code, ".".join(map(str, self.enhanced))
        return self.stage, self.code, _ADDRESS.sub("<>", self.text).lower()[:120]


def reply_line(code: int, message: bytes | str) -> str:
    """A server's reply on one line, as results and errors quote it."""
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"[:300]


def classify(stage: str, code: int, message: bytes) -> SendResult:
    """Turn a refusal of MAIL, RCPT or DATA into what delivery should do."""
    text = " ".join(message.decode("utf-8", "replace").split())
    detail = f"{stage}: {code} {text}"[:300]
    match = _ENHANCED.match(text)
    subject, number = (int(match[2]), int(match[3])) if match else (None, None)
    if code < 500 or (subject, number) == (2, 2):
        return SendResult("retry", detail, code)  # deferred, or a full mailbox: try again later
    if stage != "MAIL" and _no_mailbox(stage, code, text, subject, number):
        return SendResult("bounce", detail, code)
    return SendResult("fail", detail, code)


def _no_mailbox(stage: str, code: int, text: str, subject: int | None, number: int | None) -> bool:
    """True when a 5xx reply to RCPT or DATA says the recipient's mailbox does not exist."""
    if (subject, number) in _NO_MAILBOX_CODES:
        return True  # one recipient per message: after DATA too, it is about that recipient
    specific = subject is not None and not (number == 0 and subject in (0, 1))
    if specific or stage != "RCPT" or code not in (550, 551, 553):
        return False  # a specific code says what it is; without one, only RCPT's text can tell
    return bool(_NO_MAILBOX_TEXT.search(text)) and not _ABOUT_SENDER.search(text)


def advice(reply: Reply) -> str:
    """What to fix when a refusal about our side comes back for many recipients alike."""
    subject = reply.enhanced[1:] if reply.enhanced else None
    text = reply.text.lower()
    if subject in ((2, 3), (3, 4)) or (reply.code == 552 and reply.stage == "DATA"):
        return (
            "the message is larger than the relay accepts: lower size_budget_kb or the papers "
            "per issue, or raise the relay's message size limit"
        )
    if "starttls" in text or "tls" in text.split():
        return "the relay wants TLS first: set delivery.smtp.security to starttls (or tls)"
    if (
        reply.code == 530
        or subject in ((7, 0), (7, 8), (7, 9))
        or "relay" in text
        or "auth" in text
    ):
        return (
            "the relay does not take mail from us unauthenticated: set delivery.smtp.username "
            "and the password variable delivery.smtp.password_env names, or let the relay "
            "accept this host"
        )
    if reply.stage == "MAIL" or subject in ((1, 7), (1, 8)) or _ABOUT_SENDER.search(text):
        return (
            "the relay refuses our sender: set sender.address to an address it accepts, in a "
            "domain that exists (MX or A record) and whose SPF allows this relay"
        )
    if subject is not None and subject[0] == 7 and reply.stage != "DATA":
        return (
            "the relay's policy refuses mail from this host: fix what the reply names (often "
            "the host's reverse DNS or a blocklist entry) with the relay's operator"
        )
    if subject is not None and subject[0] in (6, 7):
        return (
            "the relay refuses the message itself: check DKIM (dkim:), SPF and DMARC for the "
            "sender's domain and what its content filter says"
        )
    return "fix what the reply names on the relay's side or ours"
