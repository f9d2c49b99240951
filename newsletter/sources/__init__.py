"""Paper sources: read a file, URL or the bundled sample, or the sources a config names.

Every source gives `list[Paper]` built by `newsletter.sources.normalize.make_paper`. The parser
is chosen from the content (`detect_kind`), not from the file name alone, unless a kind is
forced. httpx, feedparser and pydantic are imported only when used, so importing this package
stays cheap.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter import resources
from newsletter.errors import FetchError, SourceError
from newsletter.models import Paper
from newsletter.sources import arxiv, files, hf_api, hf_page
from newsletter.sources.http import fetch
from newsletter.sources.normalize import dedupe

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KINDS = ("hf_page", "hf_api", "arxiv", "papers")
_PROLOG = re.compile(rb"^(?:\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>)*", re.DOTALL | re.IGNORECASE)
_ROOT = re.compile(rb"<\s*([A-Za-z_][\w.:-]*)")
_FEED_ROOTS = {b"feed", b"rss", b"rdf"}
_LIST_START = re.compile(r"^(?:- |-$|---|papers:)", re.MULTILINE)


def detect_kind(data: bytes, name: str) -> str:
    """Return which parser reads `data`: hf_page, hf_api, arxiv or papers (from the content)."""
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not body:
        raise SourceError(f"{name}: the file is empty; expected papers")
    if body.startswith(b"<"):
        return _xml_kind(body, name)
    if body[:1] in (b"[", b"{"):
        return _json_kind(body)
    if name.lower().endswith((".json", ".jsonl", ".yaml", ".yml")):
        return "papers"
    first = next(
        (
            ln
            for ln in body[:4096].decode("utf-8", "replace").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")
        ),
        "",
    )
    return "papers" if _LIST_START.match(first) else "hf_page"


def _xml_kind(body: bytes, name: str) -> str:
    head = body[:8192]
    rest = head[_PROLOG.match(head).end() :]  # type: ignore[union-attr]
    root = _ROOT.match(rest)
    tag = root.group(1) if root else b""
    local = tag.rsplit(b":", 1)[-1]
    if local.lower() in _FEED_ROOTS:
        return "arxiv"
    if local.lower() == b"html" or b"<!doctype html" in head.lower():
        raise SourceError(
            f"{name}: an HTML page, not a paper source; save the Daily Papers page as text "
            "(select all, copy, paste into a .txt file) or use an API or feed URL"
        )
    shown = tag.decode("utf-8", "replace") or "?"
    raise SourceError(f"{name}: XML with root <{shown}> is not an RSS or Atom feed")


def _json_kind(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "papers"  # JSON Lines, or broken JSON that the papers parser reports by line
    first = doc[0] if isinstance(doc, list) and doc else None
    return (
        "hf_api" if isinstance(first, dict) and isinstance(first.get("paper"), dict) else "papers"
    )


def parse_source(
    data: bytes, name: str, *, kind: str | None = None, now: datetime | None = None
) -> list[Paper]:
    """Parse `data` with the parser `kind` names (detected when None)."""
    kind = _check_kind(kind) or detect_kind(data, name)
    if kind == "hf_page":
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise SourceError(f"{name}: not UTF-8 text (byte {e.start}); save it as UTF-8") from e
        papers = hf_page.parse_page(text, name, today=now)
    elif kind == "hf_api":
        papers = hf_api.parse_daily_papers(data, name)
    elif kind == "arxiv":
        papers = arxiv.parse_feed(data, name)
    else:
        papers = files.parse_papers(data, name)
    log.info("%s: %d papers (%s)", name, len(papers), kind)
    return papers


def _check_kind(kind: str | None) -> str | None:
    if kind is not None and kind not in KINDS:
        raise SourceError(f"unknown kind '{kind}'; use one of {', '.join(KINDS)}")
    return kind


def read_source(
    source: str,
    *,
    kind: str | None = None,
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> list[Paper]:
    """Read papers from a file path, an http(s) URL, or `sample` (the bundled Daily Papers page)."""
    _check_kind(kind)
    if re.match(r"^https?://", source, re.IGNORECASE):
        return parse_source(_download(source, client), source, kind=kind, now=now)
    path = resources.sample_papers_path() if source == "sample" else Path(source).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(
            f"{source}: no such file; give a file path, an http(s) URL or `sample`"
        ) from None
    except IsADirectoryError:
        raise SourceError(f"{source}: is a folder; give a file of papers") from None
    except OSError as e:
        raise SourceError(f"{source}: cannot read ({e.strerror or e})") from e
    return parse_source(data, source, kind=kind, now=now)


def _download(url: str, client: httpx.Client | None) -> bytes:
    try:
        return fetch(url, client).content
    except FetchError as e:
        body = getattr(e, "body", b"")
        if body and b"<feed" in body[:2000]:
            arxiv.parse_feed(body, url)  # an arXiv API error feed: raise with arXiv's message
        raise


def read_sources(
    sources: Iterable[str],
    *,
    kind: str | None = None,
    client: httpx.Client | None = None,
    now: datetime | None = None,
) -> list[Paper]:
    """Read several sources (see `read_source`) into one deduplicated list."""
    papers: list[Paper] = []
    for source in sources:
        papers.extend(read_source(source, kind=kind, client=client, now=now))
    return dedupe(papers)


def _load_spec(
    spec: Any, client: httpx.Client | None, now: datetime | None, days: int
) -> list[Paper]:
    # the config models load pydantic; `papers` and `topics assign` never need them
    from newsletter.config.sections import ArxivSource, FileSource, HfDailySource, UrlSource

    if isinstance(spec, HfDailySource):
        return hf_api.fetch_daily_papers(spec, client=client, now=now, days=days)
    if isinstance(spec, ArxivSource):
        return arxiv.fetch_arxiv(spec, client=client)
    if isinstance(spec, FileSource):
        return read_source(spec.path, kind=spec.kind, now=now)
    if isinstance(spec, UrlSource):
        return read_source(spec.url, kind=spec.kind, client=client, now=now)
    raise SourceError(f"unsupported source {spec!r}")


def _label(spec: Any) -> str:
    for attr in ("path", "url", "query"):
        if getattr(spec, attr, None):
            return str(getattr(spec, attr))
    return "+".join(getattr(spec, "categories", ())) or type(spec).__name__


def load_papers(
    specs: Sequence[Any],
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    window_days: int = 7,
) -> list[Paper]:
    """Read every configured source and deduplicate across them.

    A failing source is logged and skipped so one outage does not cancel the issue; only when
    every source fails is the (first) error raised.
    """
    papers: list[Paper] = []
    errors: list[tuple[Any, SourceError]] = []
    for spec in specs:
        try:
            found = _load_spec(spec, client, now, window_days)
        except SourceError as e:
            errors.append((spec, e))
            continue
        papers.extend(found)
    if errors and len(errors) == len(specs):
        raise errors[0][1]  # the caller prints it; logging it too would say it twice
    for spec, error in errors:
        log.error("source %s failed (the others still count): %s", _label(spec), error)
    unique = dedupe(papers)
    log.info(
        "%d papers from %d source(s) (%d duplicates merged, %d source(s) failed)",
        len(unique),
        len(specs) - len(errors),
        len(papers) - len(unique),
        len(errors),
    )
    return unique
