"""arXiv: the API's Atom search results and the RSS/Atom listing feeds, parsed with feedparser.

Listing feeds (`rss.arxiv.org/rss/cs.CL+cs.LG`) give the day's announcements with an announce
type (new, cross, replace, replace-cross), the authors as one `dc:creator` string and the abstract
inside the description after "Announce Type: ... Abstract:". The API answers a bad query with a
feed holding one error entry, which becomes a SourceError quoting arXiv's message. Live requests
keep arXiv's rule of one request every three seconds.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from xml.sax import SAXException

from newsletter.errors import FetchError, SourceError
from newsletter.models import Paper
from newsletter.sources.http import fetch
from newsletter.sources.normalize import make_paper

if TYPE_CHECKING:
    import httpx

    from newsletter.config import ArxivSource

log = logging.getLogger(__name__)

FEED_URL = "https://rss.arxiv.org/rss/"
API_URL = "https://export.arxiv.org/api/query"
API_PAGE_SIZE = 100
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")
_DESCRIPTION = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>\S+)\s+Abstract:\s*(?P<abstract>.*)$",
    re.DOTALL,
)


class RateLimiter:
    """Space calls at least `interval` seconds apart (arXiv asks for one request per 3 s)."""

    def __init__(
        self,
        interval: float = 3.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        """Sleep until `interval` has passed since the previous call, then mark this one."""
        if self._last is not None:
            remaining = self._last + self.interval - self.clock()
            if remaining > 0:
                self.sleep(remaining)
        self._last = self.clock()


# Shared by every arXiv request of the process, so two arXiv sources still keep the pace.
LIMITER = RateLimiter()


def parse_feed(data: bytes | str, name: str = "arxiv") -> list[Paper]:
    """Parse an arXiv API response or listing feed (RSS or Atom) into papers."""
    import feedparser  # 95 ms to import: only arXiv sources pay it

    # Sanitising would treat abstracts as HTML ("a<b and c>d" loses text); they are plain text.
    feed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
    problem = _xml_problem(feed)
    if not feed.get("version"):
        why = f" ({problem})" if problem else ""
        raise SourceError(f"{name}: not an RSS or Atom feed{why}; expected an arXiv feed")
    entries = feed.entries
    if problem:
        # feedparser's loose mode still reads what it can; with nothing read, say why.
        if not entries:
            raise SourceError(f"{name}: not a well-formed feed ({problem}); is the file complete?")
        log.warning("%s: not well-formed XML (%s); read %d entries", name, problem, len(entries))
    _raise_api_error(entries, name)
    # Only the API's search results carry OpenSearch totals; listing feeds do not.
    api = "opensearch_totalresults" in feed.feed
    papers: list[Paper] = []
    for i, entry in enumerate(entries):
        try:
            papers.append(_paper(entry, api=api))
        except ValueError as e:
            log.warning("%s: entry %d skipped: %s", name, i + 1, e)
    log.debug("%s: %d papers from %d entries", name, len(papers), len(entries))
    return papers


def _xml_problem(feed: Any) -> str | None:
    """What made the XML malformed (without feedparser's line numbers, which count its rewrite)."""
    problem = feed.get("bozo_exception")
    return problem.getMessage() if isinstance(problem, SAXException) else None


def _raise_api_error(entries: list[Any], name: str) -> None:
    for entry in entries:
        ref = str(entry.get("id", ""))
        if "/api/errors" in ref or (entry.get("title") == "Error" and "/abs/" not in ref):
            message = " ".join(str(entry.get("summary", "unknown error")).split())
            raise SourceError(f"{name}: arXiv API error: {message}; fix the query or id list")


def _paper(entry: Any, *, api: bool) -> Paper:
    description = str(entry.get("summary", ""))
    match = _DESCRIPTION.match(description)
    announce = entry.get("arxiv_announce_type") or (match["type"] if match else None)
    abstract = match["abstract"] if match else description
    ref = entry.get("id") or (match["id"] if match else None) or entry.get("link")
    names = [a.get("name", "") for a in entry.get("authors") or () if isinstance(a, dict)]
    # Listing feeds put every author in one dc:creator string; the API gives one <author> each.
    authors = names if api else ", ".join(names)
    categories = [t.get("term") for t in entry.get("tags") or () if t.get("term")]
    primary = (entry.get("arxiv_primary_category") or {}).get("term")
    if primary:
        categories = [primary, *(c for c in categories if c != primary)]
    return make_paper(
        entry.get("title"),
        id=ref,
        authors=authors,
        abstract=abstract,
        url=_abs_url(entry),
        published=_iso(entry.get("published_parsed") or entry.get("updated_parsed")),
        source="arxiv_api" if api else "arxiv_feed",
        categories=categories,
        announce_type=announce,
    )


def _abs_url(entry: Any) -> str | None:
    """The abstract page without its version, so a link shows the latest version."""
    link = entry.get("link")
    if not link:
        return None
    return re.sub(r"^http://", "https://", re.sub(r"v\d+$", "", link))


def _iso(parsed: time.struct_time | None) -> str | None:
    # feedparser gives UTC struct_time; keep it as an ISO string for make_paper.
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", parsed) if parsed else None


def keep_announced(papers: Iterable[Paper], announce_types: Iterable[str]) -> list[Paper]:
    """Drop listing-feed papers whose announce type is not wanted (API papers have none)."""
    wanted = {t.casefold() for t in announce_types}
    return [p for p in papers if p.announce_type is None or p.announce_type.casefold() in wanted]


def listing_url(categories: Iterable[str], base: str = FEED_URL) -> str:
    """`https://rss.arxiv.org/rss/cs.CL+cs.LG` for categories cs.CL and cs.LG."""
    return base.rstrip("/") + "/" + "+".join(categories)


def _get(
    url: str,
    client: httpx.Client | None,
    limiter: RateLimiter,
    params: dict[str, Any] | None = None,
) -> bytes:
    limiter.wait()
    try:
        return fetch(url, client, params=params, sleep=limiter.sleep).content
    except FetchError as e:
        body = getattr(e, "body", b"")
        if body and b"<feed" in body[:2000]:
            parse_feed(body, getattr(e, "url", url))  # raises with arXiv's own message
        raise


def fetch_listing(
    categories: Iterable[str],
    *,
    announce_types: Iterable[str] = ("new", "cross"),
    base_url: str = FEED_URL,
    client: httpx.Client | None = None,
    limiter: RateLimiter | None = None,
) -> list[Paper]:
    """Fetch the listing feed of `categories` and keep the wanted announce types."""
    url = listing_url(categories, base_url)
    papers = parse_feed(_get(url, client, limiter or LIMITER), url)
    kept = keep_announced(papers, announce_types)
    log.info(
        "arxiv %s: %d papers (%d skipped by announce type)", url, len(kept), len(papers) - len(kept)
    )
    return kept


def fetch_query(
    query: str,
    *,
    max_results: int = 200,
    api_url: str = API_URL,
    client: httpx.Client | None = None,
    limiter: RateLimiter | None = None,
) -> list[Paper]:
    """Page through an API search, newest submissions first, up to `max_results` papers."""
    papers: list[Paper] = []
    while len(papers) < max_results:
        size = min(API_PAGE_SIZE, max_results - len(papers))
        params = {
            "search_query": query,
            "start": len(papers),
            "max_results": size,
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        }
        batch = parse_feed(_get(api_url, client, limiter or LIMITER, params), api_url)
        papers.extend(batch)
        if len(batch) < size:
            break
    log.info("arxiv query %r: %d papers", query, len(papers))
    return papers


def fetch_arxiv(
    spec: ArxivSource, *, client: httpx.Client | None = None, limiter: RateLimiter | None = None
) -> list[Paper]:
    """Read an `arxiv:` source: its API query if it has one, else its categories' listing feed."""
    if spec.query:
        return fetch_query(
            spec.query,
            max_results=spec.max_results,
            api_url=spec.api_url,
            client=client,
            limiter=limiter,
        )
    return fetch_listing(
        spec.categories,
        announce_types=spec.announce_types,
        base_url=spec.feed_url,
        client=client,
        limiter=limiter,
    )
