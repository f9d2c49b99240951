"""The audience: the hand-written `subscribers.yaml`, imports, and the state store's subscribers.

The file is read as a stream (`newsletter.audience.reading`: libyaml's C parser, one entry at a
time), so a list of a million people never sits in memory: a send writes it into the ledger as
it is read, an import into the state. Every entry keeps its line, so a problem names the line it
is on. A bad entry is reported and skipped; only a file that is not YAML at all stops the load.

Addresses are validated for syntax by `email-validator`, normalised (IDNA domain, NFC) and then
lower-cased as a whole: the address is the identity that suppressions and the ledger match on, and
an unsubscribe of `Bob@Example.org` must also stop `bob@example.org`. Mailbox providers treat
local parts case-insensitively in practice; RFC 5321 asks senders not to rely on the difference.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NamedTuple

import yaml
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM
from email_validator.rfc_constants import EMAIL_MAX_LENGTH as _MAX_ADDRESS

from newsletter.audience.reading import NULL, csv_rows, csv_topics, yaml_entries
from newsletter.audience.seen import AddressSet
from newsletter.errors import SubscribersError
from newsletter.models import Subscriber

if TYPE_CHECKING:
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
if LOADER is yaml.SafeLoader:  # pragma: no cover - depends on how PyYAML was built
    log.warning("PyYAML has no libyaml; a long subscribers.yaml will load slowly")

KEYS = ("email", "name", "topics", "format")
FORMATS = ("html", "text")
_NULL = NULL
CHUNK = 5000  # entries per state lookup or insert
# every character `str.splitlines` breaks on: a name goes into a header, where any of them could
# start a new header line
_BREAK = re.compile(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f]")  # the other controls but tab


MAX_NAME = 200  # a name goes into the To: header


class SubscriberList(NamedTuple):
    subscribers: list[Subscriber]
    problems: list[str]  # one line each: "subscribers.yaml: line 12: ..."


@dataclass(frozen=True)
class ImportResult:
    added: int  # new in the state store
    existing: int  # already there, left as they were
    problems: list[str]


def _validate(raw: str) -> ValidatedEmail:
    try:
        # allow_smtputf8=False: a non-ASCII local part needs SMTPUTF8 end to end, which the
        # delivery does not speak; refusing it here beats a failure at every send
        return validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as e:
        raise ValueError(str(e)) from e


def _ascii(valid: ValidatedEmail) -> str:
    # the ASCII (IDNA) form: what SMTP servers accept in RCPT TO, and one identity per address
    return (valid.ascii_email or valid.normalized).lower()


def normalize_email(raw: str) -> str:
    """Return the address validated and normalised, or raise `ValueError` saying why."""
    return _ascii(_validate(raw.strip()))


class AddressCache:
    """`normalize_email`, with each domain's verdict kept: the library's domain checks (IDNA,
    special-use names) are most of its cost, and a list holds few distinct domains.

    An address takes the short way only when its local part is plain ASCII dot-atom text (the
    library's own pattern, which it accepts unchanged) and its domain, written the same way,
    already passed in full; the lengths the library checks are checked again. Anything else goes
    through `normalize_email` whole, so results never differ (tests compare the two).
    """

    def __init__(self) -> None:
        self.domains: dict[str, tuple[str, str]] = {}  # as written -> (normalised, IDNA ASCII)

    def normalize(self, raw: str) -> str:
        raw = raw.strip()
        local, _, domain = raw.rpartition("@")
        known = self.domains.get(domain)
        # over 64 characters, versions of the library disagree: let it decide
        if known is not None and len(local) <= 64 and _DOT_ATOM.match(local):
            forms = (raw, f"{local}@{known[0]}", f"{local}@{known[1]}")
            if all(len(form.encode()) <= _MAX_ADDRESS for form in forms):
                return f"{local}@{known[1]}".lower()
        valid = _validate(raw)
        if _DOT_ATOM.match(local) and valid.ascii_domain:
            self.domains[domain] = (valid.domain, valid.ascii_domain)
        return _ascii(valid)


def _label(path: Path) -> str:
    """Name a file as the user would: relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class _Checker:
    """Turn raw entries into `Subscriber`s, collecting one problem line per bad entry."""

    def __init__(self, label: str, topic_names: Iterable[str], source: str) -> None:
        self.label = label
        self.topics = {name.casefold(): name for name in topic_names}
        self.source = source
        self.seen = AddressSet()  # every address so far, with the line of its first entry
        self.addresses = AddressCache()
        self.problems: list[str] = []

    def problem(self, line: int, text: str) -> None:
        self.problems.append(f"{self.label}: line {line}: {text}")

    def add(
        self,
        line: int,
        email: str | None,
        name: str | None,
        topics: list[tuple[str, int]] | None,
        fmt: str | None,
    ) -> Subscriber | None:
        """Check one entry; return it, or report every problem it has and skip it."""
        if not email or not email.strip():
            self.problem(line, "entry has no email; write it as `- email: alice@example.org`")
            return None
        try:
            address = self.addresses.normalize(email)
        except ValueError as e:
            self.problem(line, f"'{email.strip()}' is not a valid address: {e}")
            return None
        before = len(self.problems)
        if name is not None:
            name = name.strip() or None
        if name and len(name) > MAX_NAME:
            self.problem(line, f"{address}: name is longer than {MAX_NAME} characters; shorten it")
        elif name and _BREAK.search(name):
            self.problem(line, f"{address}: name contains a line break; write it on one line")
        elif name and _CONTROL.search(name):
            self.problem(line, f"{address}: name contains a control character; remove it")
        chosen = self._topics(line, address, topics)
        fmt = (fmt or "html").strip().lower()
        if fmt not in FORMATS:
            self.problem(line, f"{address}: format '{fmt}' is not html or text")
        if len(self.problems) > before:
            return None
        first = self.seen.add(address, line)
        if first is not None:
            self.problem(line, f"{address} is listed twice (first on line {first}); skipped")
            return None
        return Subscriber(address, name, chosen, fmt, self.source)  # type: ignore[arg-type]

    def _topics(
        self, line: int, address: str, topics: list[tuple[str, int]] | None
    ) -> frozenset[str] | None:
        if topics is None:
            return None
        names = [(n.strip(), at) for n, at in topics if n and n.strip()]
        if not names:
            self.problem(line, f"{address}: topics is empty; list topic names or write `all`")
            return None
        if any(n.casefold() == "all" for n, _ in names):
            return None
        chosen = set()
        for name, at in names:
            known = self.topics.get(name.casefold())
            if known is None:
                close = difflib.get_close_matches(name, list(self.topics.values()), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else " (see config.yaml)"
                self.problem(at, f"{address}: unknown topic '{name}'{hint}")
            else:
                chosen.add(known)
        return frozenset(chosen)


def _scalar(node: yaml.Node | None) -> str | None:
    if node is None or node.tag == _NULL:
        return None
    if isinstance(node, yaml.ScalarNode):
        return str(node.value)
    raise TypeError


def _entry(node: yaml.Node, checker: _Checker) -> Subscriber | None:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):  # a bare address: `- alice@example.org`
        return checker.add(line, _scalar(node), None, None, None)
    if not isinstance(node, yaml.MappingNode):
        checker.problem(line, "expected an entry like `- email: alice@example.org`")
        return None
    fields: dict[str, yaml.Node] = {}
    bad = False
    for key, value in node.value:
        name = str(key.value)
        if name not in KEYS:
            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; use {', '.join(KEYS)}"
            checker.problem(key.start_mark.line + 1, f"unknown key '{name}'{hint}")
            bad = True
        elif name in fields:
            checker.problem(key.start_mark.line + 1, f"key '{name}' appears twice in one entry")
            bad = True
        fields[name] = value
    try:
        email, person, fmt = (_scalar(fields.get(k)) for k in ("email", "name", "format"))
    except TypeError:
        checker.problem(line, "email, name and format take one value each, not a list")
        return None
    topics_node = fields.get("topics")
    topics: list[tuple[str, int]] | None = None
    if isinstance(topics_node, yaml.SequenceNode):
        topics = []
        for item in topics_node.value:
            if not isinstance(item, yaml.ScalarNode):
                checker.problem(item.start_mark.line + 1, "a topic is a name, not a list")
                return None
            topics.append((str(item.value), item.start_mark.line + 1))
    elif topics_node is not None and topics_node.tag != _NULL:
        if not isinstance(topics_node, yaml.ScalarNode):
            checker.problem(line, "topics is a list of names (or `all`)")
            return None
        topics = [(str(topics_node.value), topics_node.start_mark.line + 1)]
    if bad:
        return None
    return checker.add(line, email, person, topics, fmt)


class SubscriberFile:
    """A subscribers list (YAML, or CSV for imports), read entry by entry as it is iterated.

    Iterating yields the valid entries in file order and collects a problem line for each bad
    one in `problems`; a missing file yields nothing. Iterate it once.
    """

    def __init__(self, path: str | Path, topic_names: Iterable[str], *, source: str = "file"):
        self.path = Path(path)
        self.label = _label(self.path)
        self._checker = _Checker(self.label, topic_names, source)
        self.problems = self._checker.problems
        self.exists = self.path.is_file()

    def __iter__(self) -> Iterator[Subscriber]:
        if not self.exists:
            log.info("%s: no such file; no hand-written subscribers", self.label)
            return
        try:
            # newline="": the csv module reads line ends inside quoted cells itself
            with self.path.open(encoding="utf-8-sig", newline="") as stream:
                if self.path.suffix.lower() == ".csv":
                    yield from self._csv(stream)
                else:
                    for node in yaml_entries(stream, self.label, LOADER):
                        sub = _entry(node, self._checker)
                        if sub is not None:
                            yield sub
        except (OSError, UnicodeDecodeError) as e:
            raise SubscribersError(f"{self.label}: cannot read ({e})") from e

    def _csv(self, stream: IO[str]) -> Iterator[Subscriber]:
        checker = self._checker
        for row in csv_rows(stream, self.label):
            if isinstance(row, str):
                checker.problems.append(row)
                continue
            line, cells = row
            sub = checker.add(
                line,
                cells.get("email"),
                cells.get("name"),
                csv_topics(cells, line),
                cells.get("format"),
            )
            if sub is not None:
                yield sub


def read_subscribers(path: str | Path, topic_names: Iterable[str]) -> SubscriberFile:
    """The hand-written list, to be read as it is used (a missing file is an empty list)."""
    return SubscriberFile(path, topic_names)


def load_subscribers(path: str | Path, topic_names: Iterable[str]) -> SubscriberList:
    """Read the hand-written list whole; a missing file is an empty list, a bad entry a problem."""
    listed = read_subscribers(path, topic_names)
    people = list(listed)
    log.debug("%s: %d subscribers, %d problems", listed.label, len(people), len(listed.problems))
    return SubscriberList(people, listed.problems)


def import_subscribers(path: str | Path, store: Store, topic_names: Iterable[str]) -> ImportResult:
    """Add a YAML or CSV list to the state store as confirmed, a chunk at a time as it is
    read; report bad rows by line."""
    listed = SubscriberFile(path, topic_names, source="cli")
    if not listed.exists:
        raise SubscribersError(f"{listed.label}: no such file; give the list to import")
    added = total = 0
    entries = iter(listed)
    while chunk := list(islice(entries, CHUNK)):
        added += store.add_subscribers(chunk, status="confirmed")
        total += len(chunk)
    existing = total - added
    log.info(
        "%s: %d added, %d already subscribed, %d problems",
        listed.label,
        added,
        existing,
        len(listed.problems),
    )
    return ImportResult(added, existing, listed.problems)


def audience(file_subscribers: Iterable[Subscriber], store: Store) -> Iterator[Subscriber]:
    """Yield who gets the issue: the file and the confirmed state subscribers, less suppressions.

    An address in both comes once, as the state has it: the state holds what the person chose
    on the preferences page, while the file (never rewritten) holds what the operator wrote
    first. A suppression (unsubscribe, bounce, complaint) beats both. The file's entries come
    first, in its order, then the state's, oldest first; both are read a chunk at a time.
    """
    kept = suppressed = 0
    entries = iter(file_subscribers)
    while chunk := list(islice(entries, CHUNK)):
        in_state, stopped = store.roster.known([sub.email for sub in chunk])
        for sub in chunk:
            if sub.email in in_state:
                continue  # the state's own entry comes below
            if sub.email in stopped:
                suppressed += 1
            else:
                kept += 1
                yield sub
    for sub in store.roster.confirmed():
        kept += 1
        yield sub
    suppressed += store.roster.suppressed_count()
    log.info("audience: %d subscribers (%d suppressed)", kept, suppressed)


def make_subscriber(
    email: str,
    topic_names: Iterable[str],
    *,
    name: str | None = None,
    topics: str | None = None,
    fmt: str = "html",
    source: str = "cli",
) -> Subscriber:
    """Check one subscriber given on the command line (`topics` comma-separated, or `all`)."""
    checker = _Checker("subscriber", topic_names, source)
    chosen = None if topics is None else [(t, 1) for t in topics.split(",")]
    sub = checker.add(1, email, name, chosen, fmt)
    if sub is None:
        raise SubscribersError(checker.problems[0].replace(": line 1: ", ": ", 1))
    return sub
