"""One place where papers are made: text normalisation, stable ids, deduplication.

Every source builds its papers with `make_paper`, so whitespace, unicode, ids, dates and derived
arXiv links are handled the same way whatever the paper came from. Third-party data is not
trusted: control characters are stripped (one backspace in a title once stopped a whole week's
email, since MJML, XML and mail headers cannot carry it), over-long fields are cut, and only
http(s) links are kept (a `javascript:` link must never reach an email). Each change is logged
with the paper it touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from datetime import date, datetime, timezone
from urllib.parse import urlsplit

from newsletter.models import Paper

log = logging.getLogger(__name__)

_SPACE = re.compile(r"\s+")
# C0 and C1 control characters (but the whitespace ones: tab, line breaks, which become spaces
# below), and the code points XML cannot carry: the noncharacters. A lone surrogate (a broken
# `\ud800` escape in JSON) cannot even be encoded as UTF-8: it becomes U+FFFD.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ufdd0-\ufdef\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# In a link every whitespace or control character goes, as a browser drops tab and newline
# inside a URL (WHATWG URL): `java\tscript:` must be read as the `javascript:` it becomes.
_LINK_JUNK = re.compile("[\x00-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]")
LINK_SCHEMES = ("http", "https")
# Caps on what one paper may bring: far above real papers (an arXiv abstract has at most 1,920
# characters), low enough that one bad record cannot fill the email or the archive.
MAX_CHARS = {"title": 500, "abstract": 10_000, "summary": 2_000, "author": 200}
MAX_AUTHORS = 500
MAX_CATEGORIES = 50
MAX_LINK = 2_000  # browsers and proxies start refusing longer URLs
# New-style ids (0704.0001 onwards: 4+4, from 2015 4+5 digits) and old-style `archive[.SC]/YYMMNNN`.
_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Za-z]{2})?/\d{7}"
_ID = rf"(?P<id>{_NEW_ID}|{_OLD_ID})(?:v\d+)?"
_BARE = re.compile(rf"^(?:arxiv:|oai:arxiv\.org:)?{_ID}$", re.IGNORECASE)
_URL_PATH = re.compile(rf"^/(?:abs|pdf|html|papers)/{_ID}(?:\.pdf)?/?$")
# Hosts whose /abs, /pdf, /html or /papers paths carry an arXiv id.
_ID_HOSTS = ("arxiv.org", "huggingface.co", "alphaxiv.org")
_NAME_SUFFIXES = {"jr", "jr.", "sr", "sr.", "ii", "iii", "iv"}


def normalize_text(value: object) -> str:
    """Return `value` as NFC text without control characters, whitespace runs as one space."""
    if value is None:
        return ""
    text = _CONTROL.sub("", str(value))
    if not text.isascii():  # ASCII has no surrogates and is its own NFC: most text skips both
        text = unicodedata.normalize("NFC", _SURROGATE.sub("\ufffd", text))
    # split() cuts at the same whitespace as `\s+`, in C: several times faster on an abstract
    return " ".join(text.split())


def _cut(text: str, limit: int) -> str:
    """`text` shortened to at most `limit` characters at a word, with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip() + "…"


def _link(value: object) -> tuple[str | None, str]:
    """(the link, "") or (None, why it is not one). Spaces inside a link are encoded (`%20`)."""
    text = _LINK_JUNK.sub("", _SURROGATE.sub("", str(value or ""))).strip()
    if not text:
        return None, "empty"
    text = _SPACE.sub("%20", text)
    parts = urlsplit(text)
    if parts.scheme.lower() not in LINK_SCHEMES:
        return None, "only http and https links are kept"
    if not parts.hostname:
        return None, "a link needs a host"
    if len(text) > MAX_LINK:
        return None, f"{len(text)} characters is too long for a link (at most {MAX_LINK})"
    return text, ""


class _PunctuationToSpace(dict[int, int]):
    """A `str.translate` table of Unicode punctuation and symbols (categories P*, S*) to a space,
    filled as characters are first seen, so translating runs in C after the first time."""

    def __missing__(self, codepoint: int) -> int:
        kept = 32 if unicodedata.category(chr(codepoint))[0] in "PS" else codepoint
        self[codepoint] = kept
        return kept


_PUNCTUATION_TO_SPACE = _PunctuationToSpace()


def title_key(title: str) -> str:
    """Return the form of a title used to match duplicates: casefolded, punctuation as spaces."""
    text = unicodedata.normalize("NFKC", normalize_text(title)).casefold()
    # Punctuation becomes a space so "Text-to-Image" and "Text to Image" agree.
    return _SPACE.sub(" ", text.translate(_PUNCTUATION_TO_SPACE)).strip()


def arxiv_id(value: str | None) -> str | None:
    """Return the versionless arXiv id in an id, `arXiv:` / `oai:` form or arXiv URL, else None."""
    if not value:
        return None
    text = value.strip()
    match = _BARE.match(text)
    if match is None and "://" in text:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        if any(host == h or host.endswith("." + h) for h in _ID_HOSTS):
            match = _URL_PATH.match(parts.path)
    return match.group("id") if match else None


def paper_id(arxiv_id_or_url: str | None, title: str) -> str:
    """Return the arXiv id without version, else `title:<sha1 prefix of the title key>`."""
    found = arxiv_id(arxiv_id_or_url)
    if found:
        return found
    digest = hashlib.sha1(title_key(title).encode("utf-8")).hexdigest()
    return f"title:{digest[:12]}"


def split_authors(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Split "A, B and C" (arXiv's one-string form) into names; keep a list's items as names."""
    if value is None:
        return ()
    if not isinstance(value, str):
        return tuple(n for n in (normalize_text(v) for v in value) if n)
    parts: list[str] = []
    depth, start = 0, 0
    text = normalize_text(value)
    # Commas inside parentheses belong to an affiliation, not a new author.
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    names: list[str] = []
    for part in parts:
        for name in re.split(r"^and\s+|\s+and\s+", part.strip()):
            name = name.strip()
            if not name:
                continue
            if names and name.casefold() in _NAME_SUFFIXES:
                names[-1] = f"{names[-1]}, {name}"  # "Smith, Jr." is one name
            else:
                names.append(name)
    return tuple(names)


def parse_datetime(value: object) -> datetime | None:
    """Return an aware UTC datetime from a datetime, date or ISO-8601 string; None if blank."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        # `fromisoformat` on 3.10 takes neither "Z" nor fractions that are not 3 or 6 digits.
        text = re.sub(r"[zZ]$", "+00:00", text)
        text = re.sub(r"(\.\d{1,6})\d*", lambda m: m.group(1).ljust(7, "0"), text)
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as e:
            raise ValueError(f"'{value}' is not an ISO date (like 2026-04-28)") from e
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _optional_text(value: object) -> str | None:
    text = normalize_text(value)
    return text or None


class _Checks:
    """Cut over-long fields and drop bad links of one paper, saying which paper and why."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.pid = ""

    def name(self) -> str:
        short = self.title if len(self.title) <= 80 else self.title[:79] + "…"
        return f"paper {self.pid} {short!r}" if self.pid else f"paper {short!r}"

    def cut(self, field: str, text: str, limit: int) -> str:
        if len(text) > limit:
            log.warning("%s: %s is %d characters; cut to %d", self.name(), field, len(text), limit)
            return _cut(text, limit)
        return text

    def link(self, field: str, value: object) -> str | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        link, problem = _link(value)
        if link is None:
            shown = str(value).strip()
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            log.warning("%s: %s %r dropped: %s", self.name(), field, shown, problem)
        return link

    def authors(self, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(names) > MAX_AUTHORS:
            log.warning(
                "%s: authors lists %d names; kept the first %d",
                self.name(),
                len(names),
                MAX_AUTHORS,
            )
            names = names[:MAX_AUTHORS]
        limit = MAX_CHARS["author"]
        return tuple(self.cut("authors (a name)", n, limit) for n in names)


def make_paper(
    title: object,
    *,
    id: str | None = None,  # mirrors Paper.id
    authors: str | Iterable[str] | None = (),
    abstract: object = "",
    url: str | None = None,
    pdf_url: str | None = None,
    code_url: str | None = None,
    project_url: str | None = None,
    published: object = None,
    upvotes: object = None,
    source: str = "",
    summary: object = None,
    categories: str | Iterable[str] | None = (),
    announce_type: str | None = None,
    keywords: Iterable[object] | None = (),
) -> Paper:
    """Build a normalised `Paper`; raise ValueError when the title is missing or a field is bad.

    `id` may be an arXiv id (any version), an `oai:`/`arXiv:` form or an arXiv URL; without one
    the id falls back to the title hash. An arXiv id also fills in missing abs and PDF links.
    """
    clean_title = normalize_text(title)
    if not clean_title:
        raise ValueError("paper has no title")
    checks = _Checks(clean_title)
    clean_title = checks.cut("title", clean_title, MAX_CHARS["title"])
    pid = paper_id(id or url, clean_title)
    checks.pid = pid
    aid = None if pid.startswith("title:") else pid
    if isinstance(categories, str):
        categories = categories.split()
    summary_text = _optional_text(summary)
    votes: int | None = None
    if upvotes is not None and upvotes != "":
        try:
            votes = int(upvotes)  # type: ignore[call-overload]
        except (TypeError, ValueError) as e:
            raise ValueError(f"upvotes '{upvotes}' is not a whole number") from e
    return Paper(
        id=pid,
        title=clean_title,
        authors=checks.authors(split_authors(authors)),
        abstract=checks.cut("abstract", normalize_text(abstract), MAX_CHARS["abstract"]),
        url=checks.link("url", url) or (f"https://arxiv.org/abs/{aid}" if aid else None),
        pdf_url=checks.link("pdf_url", pdf_url)
        or (f"https://arxiv.org/pdf/{aid}" if aid else None),
        code_url=checks.link("code_url", code_url),
        project_url=checks.link("project_url", project_url),
        published=parse_datetime(published),
        upvotes=votes,
        source=source,
        summary=summary_text and checks.cut("summary", summary_text, MAX_CHARS["summary"]),
        categories=tuple(
            dict.fromkeys(c for c in (normalize_text(c) for c in categories or ()) if c)
        )[:MAX_CATEGORIES],
        announce_type=_optional_text(announce_type),
        keywords=tuple(dict.fromkeys(k for k in (normalize_text(k) for k in keywords or ()) if k)),
    )


def _missing(value: object) -> bool:
    return value is None or value == "" or value == ()


_MERGED = [f.name for f in dataclasses.fields(Paper) if f.name not in ("id", "title", "source")]


def merge(first: Paper, later: Paper) -> Paper:
    """Return `first` with the fields it lacks taken from `later` (an arXiv id beats a title id)."""
    changes = {
        name: getattr(later, name)
        for name in _MERGED
        if _missing(getattr(first, name)) and not _missing(getattr(later, name))
    }
    if first.arxiv_id is None and later.arxiv_id is not None:
        changes["id"] = later.id
    return dataclasses.replace(first, **changes) if changes else first


def dedupe(papers: Iterable[Paper]) -> list[Paper]:
    """Keep the first paper of each id, in order, merging in what later duplicates add.

    Papers also match by normalised title when at least one side has no arXiv id: a title-only
    paper (the Daily Papers page) and the same paper from the arXiv feed become one.
    """
    out: list[Paper] = []
    by_id: dict[str, int] = {}
    by_title: dict[str, int] = {}
    for paper in papers:
        key = title_key(paper.title)
        index = by_id.get(paper.id)
        if index is None and key in by_title:
            seen = out[by_title[key]]
            if seen.arxiv_id is None or paper.arxiv_id is None:
                index = by_title[key]
        if index is None:
            by_id[paper.id] = len(out)
            by_title.setdefault(key, len(out))
            out.append(paper)
            continue
        out[index] = merge(out[index], paper)
        by_id[out[index].id] = index
    return out
