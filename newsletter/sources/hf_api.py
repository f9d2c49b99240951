"""The Hugging Face Daily Papers API (`/api/daily_papers`): parse a response, page through a window.

Each item is `{"paper": {...}, ...}`; the paper's own fields (id, title, summary, authors,
upvotes, submittedOnDailyAt, githubRepo, projectPage, ai_summary, ai_keywords) are the ones
read. The window is one of `date=YYYY-MM-DD`, `week=YYYY-Www` or `month=YYYY-MM`; without one, the
ISO week that contains `now`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from newsletter.errors import SourceError
from newsletter.models import Paper
from newsletter.sources.files import json_error
from newsletter.sources.http import fetch
from newsletter.sources.normalize import make_paper

if TYPE_CHECKING:
    import httpx

    from newsletter.config import HfDailySource

log = logging.getLogger(__name__)

SOURCE = "hf_api"
API_URL = "https://huggingface.co/api/daily_papers"
MAX_PAGES = 50  # a guard against a server that ignores `p` and repeats a full page forever


def parse_daily_papers(data: bytes | str | object, name: str = "daily_papers") -> list[Paper]:
    """Parse a Daily Papers API response (a JSON list); skip items without a title, logged."""
    if isinstance(data, (bytes, str)):
        try:
            items = json.loads(data)
        except json.JSONDecodeError as e:
            raise json_error(name, e) from e
    else:
        items = data
    if not isinstance(items, list):
        raise SourceError(f"{name}: expected a JSON list of Daily Papers items")
    papers: list[Paper] = []
    for i, item in enumerate(items):
        try:
            papers.append(_paper(item))
        except (ValueError, TypeError, AttributeError) as e:
            log.warning("%s: item %d skipped: %s", name, i, e)
    return papers


def _paper(item: Any) -> Paper:
    if not isinstance(item, dict):
        raise ValueError("expected an object")
    # `/api/daily_papers` wraps the paper; `/api/papers/...` answers with the paper itself.
    inner = item.get("paper")
    paper: dict[str, Any] = inner if isinstance(inner, dict) else item
    pid = paper.get("id")
    authors = [a.get("name", "") for a in paper.get("authors") or () if isinstance(a, dict)]
    return make_paper(
        paper.get("title") or item.get("title"),
        id=pid,
        authors=authors,
        abstract=paper.get("summary") or item.get("summary") or "",
        url=f"https://huggingface.co/papers/{pid}" if pid else None,
        code_url=paper.get("githubRepo"),
        project_url=paper.get("projectPage"),
        published=(
            paper.get("submittedOnDailyAt") or paper.get("publishedAt") or item.get("publishedAt")
        ),
        upvotes=paper.get("upvotes"),
        source=SOURCE,
        summary=paper.get("ai_summary"),
        keywords=_keywords(paper.get("ai_keywords")),
    )


def _keywords(value: Any) -> list[str]:
    """The `ai_keywords` list; anything else (missing, a bare string) gives none."""
    return [str(k) for k in value if isinstance(k, str)] if isinstance(value, list) else []


def window_params(
    *,
    date: str | None = None,
    week: str | None = None,
    month: str | None = None,
    now: datetime | None = None,
    days: int = 7,
) -> list[dict[str, str]]:
    """Return the query parameters of each window to fetch.

    Default: every ISO week that overlaps the `days` before `now`, so that a Monday-morning run
    gets last week's papers and not an almost empty new week.
    """
    given = {k: v for k, v in (("date", date), ("week", week), ("month", month)) if v}
    if len(given) > 1:
        raise SourceError(f"hf_daily: give one of date, week or month, not {', '.join(given)}")
    if given:
        return [given]
    end = now or datetime.now(timezone.utc)
    weeks: list[dict[str, str]] = []
    for back in range(days, -1, -1):
        year, week_no, _ = (end - timedelta(days=back)).isocalendar()
        param = {"week": f"{year}-W{week_no:02d}"}
        if param not in weeks:
            weeks.append(param)
    return weeks


def fetch_daily_papers(
    spec: HfDailySource | None = None,
    *,
    client: httpx.Client | None = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] | None = None,
    days: int = 7,
) -> list[Paper]:
    """Fetch every paper of the configured window(s), page by page until a short page."""
    url = spec.url if spec else API_URL
    limit = spec.limit if spec else 100
    windows = window_params(
        date=spec.date if spec else None,
        week=spec.week if spec else None,
        month=spec.month if spec else None,
        now=now,
        days=days,
    )
    extra = {"sleep": sleep} if sleep else {}
    papers: list[Paper] = []
    seen: set[str] = set()
    for window in windows:
        papers.extend(_fetch_window(url, limit, window, client, seen, extra))
    log.info("hf_daily %s: %d papers", windows, len(papers))
    return papers


def _fetch_window(
    url: str,
    limit: int,
    window: dict[str, str],
    client: httpx.Client | None,
    seen: set[str],
    extra: dict[str, Any],
) -> list[Paper]:
    papers: list[Paper] = []
    for page in range(MAX_PAGES):
        params = {**window, "p": str(page), "limit": str(limit)}
        response = fetch(url, client, params=params, **extra)
        try:
            items = response.json()
        except ValueError as e:
            raise SourceError(f"{response.url}: not valid JSON ({e}); is this the API URL?") from e
        batch = parse_daily_papers(items, str(response.url))
        fresh = [p for p in batch if p.id not in seen]
        seen.update(p.id for p in batch)
        papers.extend(fresh)
        log.debug("%s page %d: %d items, %d new", url, page, len(items), len(fresh))
        if len(items) < limit or not fresh:
            break
    else:
        log.warning("%s %s: stopped after %d pages of %d", url, window, MAX_PAGES, limit)
    return papers
