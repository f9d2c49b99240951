"""Build the MIME message of a variant once, then fill in each subscriber with bytes joins.

A variant's message is serialised once by `email.message.EmailMessage` (so every header follows
its rules) and cut into a `MessageTemplate`: static byte chunks and named slots. A slot is either
a whole header line (To, Message-ID, List-Unsubscribe) or a link inside a quoted-printable body.
Body slots sit between two soft line breaks, so a link of any length starts a fresh encoded line,
the transfer encoding never splits a placeholder, and every line stays within 76 characters.
No encoded line starts with "." either: the SMTP wire form is almost always the message itself.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import policy as email_policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Literal

from newsletter.delivery.transport import Outgoing, dot_stuff
from newsletter.errors import MessageError
from newsletter.models import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER, RenderedEmail

if TYPE_CHECKING:
    from newsletter.config.stages import MailSettings

log = logging.getLogger(__name__)

Format = Literal["html", "text"]
# CRLF line ends; headers are kept on one line up to RFC 5322's hard limit of 998, because the
# email package's folding at 78 can add a leading space to a folded Subject, or double the space
# before an encoded word, and readers then see a changed subject.
POLICY = email_policy.SMTP.clone(max_line_length=998)
QP_LINE = 76  # RFC 2045: encoded lines at most 76 characters
# Header placeholders that the email package serialises verbatim on one line.
_TO_MARK = "to@slot.invalid"
_MID_MARK = "<message-id@slot.invalid>"
_LU_MARK = "<https://slot.invalid/list-unsubscribe>"
_HEADER_SLOTS = {
    f"To: {_TO_MARK}\r\n".encode(): "to",
    f"Message-ID: {_MID_MARK}\r\n".encode(): "message_id",
    f"List-Unsubscribe: {_LU_MARK}\r\n".encode(): "list_unsubscribe",
}
# Body slot marks: quoted-printable output never holds "=" followed by a non-hex letter.
_BODY_MARK = re.compile(rb"=SLOT:(\w+)=")
_HEADER_MARK = re.compile(
    rb"^(?:" + rb"|".join(re.escape(k) for k in _HEADER_SLOTS) + rb")", re.MULTILINE
)
_PLAIN_ADDR = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
)
# Display names the email package writes unquoted and unencoded (RFC 5322 atext and spaces).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_QP_SAFE = frozenset(range(33, 127)) - {ord("=")}
_QP_PLAIN = re.compile(rb"[!-~]+")  # printable ASCII, no space
_HEADER_SAFE = re.compile(r"[!-=?-~]*")  # printable ASCII but ">" (it would end the <URL>)
_HTML_SPECIAL = re.compile(r"[&<>\"']")  # what html.escape(quote=True) changes


@dataclass(frozen=True)
class Links:
    """One subscriber's personal links."""

    unsubscribe: str
    preferences: str


def from_address(config: MailSettings) -> Address:
    """The From of every message: the sender's name (default: the title) and address."""
    sender = config.sender
    return Address(display_name=sender.name or config.title, addr_spec=sender.address)


def slug(text: str) -> str:
    """Lower-case ASCII words joined by hyphens (for the List-Id)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "newsletter"


def list_id(config: MailSettings) -> str:
    """Return the List-Id (without angle brackets): configured or `<title slug>.<domain>`."""
    if config.list_id:
        return config.list_id.strip().strip("<>")
    return f"{slug(config.title)}.{config.sender.domain}"


def message_id(issue_id: str, email: str, domain: str) -> str:
    """Return the Message-ID of an issue for one recipient.

    Deterministic, so a message resent after a crash carries the same id and mail clients that
    collapse duplicates by Message-ID show it once.
    """
    digest = hashlib.blake2b(f"{issue_id}\0{email.lower()}".encode(), digest_size=12).hexdigest()
    return f"<{slug(issue_id)}.{digest}@{domain}>"


def to_header(email: str, name: str | None) -> bytes:
    """Return the folded `To:` header line for one recipient."""
    if _PLAIN_ADDR.fullmatch(email) and (not name or _PLAIN_NAME.fullmatch(name)):
        # The common case, written directly: the email package would produce the same bytes
        # (tests/test_mail.py checks this) at a twentieth of the cost.
        line = f"To: {name} <{email}>\r\n" if name else f"To: {email}\r\n"
        if len(line) <= 998:
            return line.encode("ascii")
    try:
        value = Address(display_name=name or "", addr_spec=email)
        header = POLICY.header_factory("To", str(value))
        return header.fold(policy=POLICY).encode("ascii")
    except (ValueError, IndexError, UnicodeError) as e:
        raise MessageError(f"recipient {email!r}: not a usable address or name ({e})") from e


def list_unsubscribe_header(url: str, mailto: str | None) -> bytes:
    """Return the `List-Unsubscribe:` line: the one-click URL, then the mailto when configured."""
    if not _is_header_safe(url):
        raise MessageError(f"unsubscribe URL {url!r} holds characters a header cannot carry")
    line = f"List-Unsubscribe: <{url}>"
    if mailto:
        line += f", <{mailto}>"
    if len(line) > 996:
        raise MessageError(f"unsubscribe URL {url[:60]!r}...: too long for a header line")
    return (line + "\r\n").encode("ascii")


def mailto_uri(address: str | None) -> str | None:
    """Return a `mailto:` URI for List-Unsubscribe from the configured address, if any."""
    if not address:
        return None
    uri = address if address.lower().startswith("mailto:") else f"mailto:{address}"
    if "?" not in uri:
        uri += "?subject=unsubscribe"
    if not _is_header_safe(uri):
        raise MessageError(f"unsubscribe_mailto {address!r}: not a usable address")
    return uri


def _is_header_safe(value: str) -> bool:
    return _HEADER_SAFE.fullmatch(value) is not None


def qp_atom(text: str) -> bytes:
    """Quoted-printable encode a link as lines of at most 76 characters, ending in a soft break.

    Used for body slots: a slot starts at the beginning of a line (after a soft break) so its
    encoding never depends on where the placeholder stood. A line never starts with "." (it is
    encoded) so SMTP need not dot-stuff the message.
    """
    raw = text.encode("utf-8")
    if _QP_PLAIN.fullmatch(raw):
        # The usual link: printable ASCII where only "=" needs escaping; cut it into lines
        # without splitting an escape.
        encoded = raw.replace(b"=", b"=3D")
        lines = []
        while len(encoded) > QP_LINE - 1:
            cut = _cut_point(encoded, QP_LINE - 1)
            lines.append(encoded[:cut])
            encoded = encoded[cut:]
        lines.append(encoded)
        if not any(line.startswith(b".") for line in lines):
            return b"=\r\n".join(lines) + b"=\r\n"
    out = bytearray()
    col = 0
    for byte in raw:
        piece = bytes((byte,)) if byte in _QP_SAFE else b"=%02X" % byte
        if col == 0 and piece == b".":
            piece = b"=2E"
        if col + len(piece) > QP_LINE - 1:
            out += b"=\r\n"
            col = 0
            if piece == b".":
                piece = b"=2E"
        out += piece
        col += len(piece)
    out += b"=\r\n"
    return bytes(out)


def _qp_body(text: str, slots: Mapping[str, str]) -> str:
    """Encode a body as quoted-printable, turning each placeholder into a framed body slot."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    pattern = re.compile("|".join(re.escape(p) for p in slots)) if slots else None
    pieces = pattern.split(text) if pattern else [text]
    found = pattern.findall(text) if pattern else []
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        encoded = binascii.b2a_qp(piece.encode("utf-8"), istext=True)
        if i < len(found):
            # A soft break, then the slot on line(s) of its own (a filled slot ends with a soft
            # break of its own, so what follows starts a fresh line too).
            out.append(_tidy_qp(encoded, last_limit=QP_LINE - 1).replace(b"\n", b"\r\n"))
            out.append(b"=\r\n=SLOT:" + slots[found[i]].encode() + b"=")
        else:
            out.append(_tidy_qp(encoded).replace(b"\n", b"\r\n"))
    return b"".join(out).decode("ascii")


def _tidy_qp(encoded: bytes, last_limit: int = QP_LINE) -> bytes:
    """Re-break encoded lines longer than 76 chars, and encode a "." that starts a line.

    `binascii.b2a_qp` writes 77-78 chars when it escapes a space before a line end, and leaves a
    leading "." that SMTP would have to double on the wire (RFC 5321 4.5.2); without any, a
    filled message goes out without a per-message stuffing pass. `last_limit` keeps room on the
    last line for a soft break.
    """
    lines = encoded.split(b"\n")
    limits = [QP_LINE] * (len(lines) - 1) + [last_limit]
    if all(
        len(ln) <= lim and not ln.startswith(b".") for ln, lim in zip(lines, limits, strict=True)
    ):
        return encoded
    out: list[bytes] = []
    for line, limit in zip(lines, limits, strict=True):
        while True:
            if line.startswith(b"."):
                line = b"=2E" + line[1:]
            if len(line) <= limit:
                break
            cut = _cut_point(line, QP_LINE - 1)
            out.append(line[:cut] + b"=")  # a soft break
            line = line[cut:]
        out.append(line)
    return b"\n".join(out)


def _cut_point(line: bytes, limit: int) -> int:
    """Return the largest cut at or before `limit` that does not split an "=XX" escape."""
    if line[limit - 1 : limit] == b"=":
        return limit - 1
    if line[limit - 2 : limit - 1] == b"=":
        return limit - 2
    return limit


def _text_part(content: str, subtype: str) -> EmailMessage:
    part = EmailMessage(policy=POLICY)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(content)
    return part


@dataclass(frozen=True)
class MessageTemplate:
    """One variant's message as bytes with named slots; `fill` makes a subscriber's message."""

    chunks: tuple[bytes | str, ...]  # static bytes or a slot name; each chunk starts a line
    body_index: int  # chunks[body_index:] are the body (each starts and ends a line)
    subject: str
    format: Format
    mailto: str | None
    domain: str
    issue_id: str
    # `chunks` as SMTP DATA carries them, dot-stuffed once here rather than per message: every
    # chunk starts a line and no slot value starts one with ".", so chunks stuff independently.
    wire_chunks: tuple[bytes | str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        wire = tuple(dot_stuff(c) if isinstance(c, bytes) else c for c in self.chunks)
        object.__setattr__(self, "wire_chunks", self.chunks if wire == self.chunks else wire)

    @property
    def size(self) -> int:
        """Return the size in bytes without the per-subscriber parts."""
        return sum(len(c) for c in self.chunks if isinstance(c, bytes))

    def message_id(self, email: str) -> str:
        """Return the Message-ID this variant gives a recipient's message."""
        return message_id(self.issue_id, email, self.domain)

    def fill(self, email: str, name: str | None, links: Links, mid: str | None = None) -> bytes:
        """Return one subscriber's message as bytes (CRLF line ends)."""
        return b"".join(self.pieces(email, name, links, mid))

    def pieces(
        self, email: str, name: str | None, links: Links, mid: str | None = None
    ) -> list[bytes]:
        """Return the message as byte pieces, one per chunk (for signing without a re-parse)."""
        return list(self.outgoing(email, name, links, mid).pieces)

    def outgoing(
        self, email: str, name: str | None, links: Links, mid: str | None = None
    ) -> Outgoing:
        """Return one subscriber's message as pieces, with its SMTP wire form (no copy)."""
        unsub = qp_atom(links.unsubscribe)
        prefs = qp_atom(links.preferences)
        values: dict[str, bytes] = {
            "to": to_header(email, name),
            "message_id": b"Message-ID: %s\r\n" % (mid or self.message_id(email)).encode(),
            "list_unsubscribe": list_unsubscribe_header(links.unsubscribe, self.mailto),
            "unsubscribe_text": unsub,
            "preferences_text": prefs,
            # html.escape only changes "&", "<", ">", quotes: absent from our links, so this
            # usually reuses the same bytes.
            "unsubscribe_html": _html_atom(links.unsubscribe, unsub),
            "preferences_html": _html_atom(links.preferences, prefs),
        }
        pieces = [c if isinstance(c, bytes) else values[c] for c in self.chunks]
        if self.wire_chunks is self.chunks:
            return Outgoing(pieces, pieces)
        wire = [c if isinstance(c, bytes) else values[c] for c in self.wire_chunks]
        return Outgoing(pieces, wire)


def _html_atom(url: str, plain: bytes) -> bytes:
    if not _HTML_SPECIAL.search(url):  # the usual link: the same bytes (one search, no copy)
        return plain
    return qp_atom(html.escape(url, quote=True))


def build_template(
    rendered: RenderedEmail,
    config: MailSettings,
    issue_id: str,
    *,
    fmt: Format = "html",
    date: datetime | None = None,
    placeholders: tuple[str, str] = (UNSUBSCRIBE_PLACEHOLDER, PREFERENCES_PLACEHOLDER),
) -> MessageTemplate:
    """Serialise one variant's message once, with slots for each subscriber's parts."""
    unsub_ph, prefs_ph = placeholders
    sender = config.sender
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = from_address(config)
        msg["To"] = _TO_MARK
        msg["Subject"] = rendered.subject
    except (ValueError, IndexError) as e:
        raise MessageError(
            f"config sender / subject {rendered.subject!r}: not usable in a header ({e}); "
            "remove line breaks from `sender.name`, `title` and `subject`"
        ) from e
    msg["Date"] = format_datetime(date or datetime.now(timezone.utc))
    msg["Message-ID"] = _MID_MARK
    msg["List-Id"] = f"{_phrase(config.title)} <{list_id(config)}>"
    msg["List-Unsubscribe"] = _LU_MARK
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["MIME-Version"] = "1.0"
    text = _qp_body(rendered.text, {unsub_ph: "unsubscribe_text", prefs_ph: "preferences_text"})
    if fmt == "text":
        msg["Content-Type"] = 'text/plain; charset="utf-8"'
        msg["Content-Transfer-Encoding"] = "quoted-printable"
        msg.set_payload(text)
    else:
        body = _qp_body(rendered.html, {unsub_ph: "unsubscribe_html", prefs_ph: "preferences_html"})
        msg["Content-Type"] = "multipart/alternative"
        # Plain text first: clients show the last alternative they can display.
        msg.attach(_text_part(text, "plain"))
        msg.attach(_text_part(body, "html"))
    chunks, body_index = _cut(msg.as_bytes(policy=POLICY))
    return MessageTemplate(
        chunks=chunks,
        body_index=body_index,
        subject=rendered.subject,
        format=fmt,
        mailto=mailto_uri(config.unsubscribe_mailto),
        domain=sender.domain,
        issue_id=issue_id,
    )


def _phrase(text: str) -> str:
    # List-Id is unstructured for the email package; keep its phrase to one safe line.
    return re.sub(r"[\x00-\x1f\x7f<>\"]+", " ", text).strip()


def _cut(data: bytes) -> tuple[tuple[bytes | str, ...], int]:
    """Split serialised bytes at the header and body slots."""
    head, sep, body = data.partition(b"\r\n\r\n")
    chunks: list[bytes | str] = []
    pos = 0
    head += sep
    for m in _HEADER_MARK.finditer(head):
        chunks += [head[pos : m.start()], _HEADER_SLOTS[m.group(0)]]
        pos = m.end()
    if len(chunks) != 2 * len(_HEADER_SLOTS):
        raise MessageError("internal: a per-subscriber header did not serialise on one line")
    chunks.append(head[pos:])
    chunks = [c for c in chunks if c != b""]
    body_index = len(chunks)
    pos = 0
    for m in _BODY_MARK.finditer(body):
        # The mark follows a soft break; the filled slot ends with one.
        if body[m.start() - 3 : m.start()] != b"=\r\n":
            raise MessageError("internal: a body slot does not start a line")
        chunks += [body[pos : m.start()], m.group(1).decode()]
        pos = m.end()
    chunks.append(body[pos:])
    return tuple(c for c in chunks if c != b""), body_index
