"""The audience: the hand-written `subscribers.yaml`, imports, and the state store's subscribers.

The file is read with libyaml's C composer and the nodes are walked directly, with the garbage
collector paused: 100,000 entries load in about a second instead of a minute with PyYAML's pure
loader, and every node keeps its line, so a problem names the line it is on. A bad entry is
reported and skipped; only a file that is not YAML at all stops the load.

Addresses are validated for syntax by `email-validator`, normalised (IDNA domain, NFC) and then
lower-cased as a whole: the address is the identity that suppressions and the ledger match on, and
an unsubscribe of `Bob@Example.org` must also stop `bob@example.org`. Mailbox providers treat
local parts case-insensitively in practice; RFC 5321 asks senders not to rely on the difference.
"""

from __future__ import annotations

import csv
import difflib
import gc
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import yaml
from email_validator import EmailNotValidError, ValidatedEmail, validate_email
from email_validator.rfc_constants import DOT_ATOM_TEXT as _DOT_ATOM
from email_validator.rfc_constants import EMAIL_MAX_LENGTH as _MAX_ADDRESS

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
_NULL = "tag:yaml.org,2002:null"
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


@contextmanager
def _gc_paused() -> Iterator[None]:
    # building 100k small objects triggers many full collections that find nothing to free
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


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
        self.seen: dict[str, int] = {}  # address -> line of its first entry
        self.addresses = AddressCache()
        self.subscribers: list[Subscriber] = []
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
    ) -> None:
        """Check one entry; keep it, or report every problem it has and skip it."""
        if not email or not email.strip():
            self.problem(line, "entry has no email; write it as `- email: alice@example.org`")
            return
        try:
            address = self.addresses.normalize(email)
        except ValueError as e:
            self.problem(line, f"'{email.strip()}' is not a valid address: {e}")
            return
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
        if address in self.seen:
            first = self.seen[address]
            self.problem(line, f"{address} is listed twice (first on line {first}); skipped")
        if len(self.problems) > before:
            return
        self.seen[address] = line
        self.subscribers.append(Subscriber(address, name, chosen, fmt, self.source))  # type: ignore[arg-type]

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


def _entries(root: yaml.Node | None, checker: _Checker) -> None:
    """Walk the composed document (a list of mappings, or `subscribers:` holding one)."""
    if root is None or root.tag == _NULL:
        return
    if isinstance(root, yaml.MappingNode):
        found = [v for k, v in root.value if k.value == "subscribers"]
        if len(found) != 1 or len(root.value) != 1:
            raise SubscribersError(
                f"{checker.label}: expected a list of entries like `- email: alice@example.org`"
            )
        root = found[0]
        if root.tag == _NULL:
            return
    if not isinstance(root, yaml.SequenceNode):
        raise SubscribersError(
            f"{checker.label}: expected a list of entries like `- email: alice@example.org`"
        )
    for node in root.value:
        _entry(node, checker)


def _entry(node: yaml.Node, checker: _Checker) -> None:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):  # a bare address: `- alice@example.org`
        checker.add(line, _scalar(node), None, None, None)
        return
    if not isinstance(node, yaml.MappingNode):
        checker.problem(line, "expected an entry like `- email: alice@example.org`")
        return
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
        return
    topics_node = fields.get("topics")
    topics: list[tuple[str, int]] | None = None
    if isinstance(topics_node, yaml.SequenceNode):
        topics = []
        for item in topics_node.value:
            if not isinstance(item, yaml.ScalarNode):
                checker.problem(item.start_mark.line + 1, "a topic is a name, not a list")
                return
            topics.append((str(item.value), item.start_mark.line + 1))
    elif topics_node is not None and topics_node.tag != _NULL:
        if not isinstance(topics_node, yaml.ScalarNode):
            checker.problem(line, "topics is a list of names (or `all`)")
            return
        topics = [(str(topics_node.value), topics_node.start_mark.line + 1)]
    if bad:
        return
    checker.add(line, email, person, topics, fmt)


def _read_yaml(text: str, checker: _Checker) -> None:
    with _gc_paused():
        loader = LOADER(text)
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f": line {mark.line + 1}" if mark is not None else ""
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise SubscribersError(
                f"{checker.label}{where}: not valid YAML ({problem}); fix the file"
            ) from e
        finally:
            loader.dispose()
        _entries(root, checker)


def _read_text(path: Path, label: str) -> str | None:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise SubscribersError(f"{label}: cannot read ({e})") from e


def load_subscribers(path: str | Path, topic_names: Iterable[str]) -> SubscriberList:
    """Read the hand-written list; a missing file is an empty list, a bad entry a problem."""
    path = Path(path)
    label = _label(path)
    text = _read_text(path, label)
    checker = _Checker(label, topic_names, "file")
    if text is None:
        log.info("%s: no such file; no hand-written subscribers", label)
        return SubscriberList([], [])
    _read_yaml(text, checker)
    log.debug(
        "%s: %d subscribers, %d problems", label, len(checker.subscribers), len(checker.problems)
    )
    return SubscriberList(checker.subscribers, checker.problems)


CSV_COLUMNS = ("email", "name", "topics", "format")


def _read_csv(text: str, checker: _Checker) -> None:
    """Read `email,name,topics,format` rows; topics are separated by `;` or `|`."""
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown or "email" not in header:
        what = f"unknown column '{unknown[0]}'" if unknown else "no `email` column"
        close = difflib.get_close_matches(unknown[0], CSV_COLUMNS, n=1) if unknown else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SubscribersError(
            f"{checker.label}: line 1: {what}{hint}; the header is {','.join(CSV_COLUMNS)}"
        )
    line = reader.line_num + 1
    for row in reader:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            checker.problem(start, f"{len(row)} cells but the header has {len(header)}")
            continue
        cells = dict(zip(header, row, strict=False))  # a short row leaves cells empty
        raw_topics = cells.get("topics", "").strip()
        topics = [(t, start) for t in re.split(r"[;|]", raw_topics)] if raw_topics else None
        checker.add(start, cells.get("email"), cells.get("name"), topics, cells.get("format"))


def import_subscribers(path: str | Path, store: Store, topic_names: Iterable[str]) -> ImportResult:
    """Add a YAML or CSV list to the state store as confirmed; report bad rows by line."""
    path = Path(path)
    label = _label(path)
    text = _read_text(path, label)
    if text is None:
        raise SubscribersError(f"{label}: no such file; give the list to import")
    checker = _Checker(label, topic_names, "cli")
    if path.suffix.lower() == ".csv":
        with _gc_paused():
            _read_csv(text, checker)
    else:
        _read_yaml(text, checker)
    added = store.add_subscribers(checker.subscribers, status="confirmed")
    existing = len(checker.subscribers) - added
    log.info(
        "%s: %d added, %d already subscribed, %d problems",
        label,
        added,
        existing,
        len(checker.problems),
    )
    return ImportResult(added, existing, checker.problems)


def audience(file_subscribers: Iterable[Subscriber], store: Store) -> list[Subscriber]:
    """Return who gets the issue: the file and confirmed state subscribers, less suppressions.

    An address in both keeps the state's name, topics and format: the state holds what the
    person chose on the preferences page, while the file (never rewritten) holds what the
    operator wrote first. A suppression (unsubscribe, bounce, complaint) beats both.
    """
    chosen: dict[str, Subscriber] = {}
    for sub in file_subscribers:
        chosen.setdefault(sub.email, sub)
    for sub in store.confirmed_subscribers():
        chosen[sub.email] = sub
    suppressed = store.suppressed_set()
    kept = [sub for email, sub in chosen.items() if email not in suppressed]
    log.info("audience: %d subscribers (%d suppressed)", len(kept), len(chosen) - len(kept))
    return kept


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
    checker.add(1, email, name, chosen, fmt)
    if checker.problems:
        raise SubscribersError(checker.problems[0].replace(": line 1: ", ": ", 1))
    return checker.subscribers[0]
