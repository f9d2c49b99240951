"""One HTTP GET for every source: timeouts, retries with backoff, and errors that name the URL.

The client is a parameter (tests pass one over `httpx.MockTransport` or a local server) and so is
`sleep`, so retry tests do not wait. httpx is imported inside `fetch` to keep CLI start-up cheap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from newsletter import __version__
from newsletter.errors import FetchError

if TYPE_CHECKING:
    import httpx  # 165 ms to import: only a fetch pays it, never a local file

log = logging.getLogger(__name__)

USER_AGENT = f"newsletter/{__version__} (self-hosted research-paper digest)"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # a server asking for longer than this is treated as a failure to retry


def _retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime  # only on this rare path: keeps import cheap

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def _snippet(response: httpx.Response) -> str:
    """The start of a short JSON or text error body on one line (APIs put the reason there)."""
    kind = response.headers.get("content-type", "")
    if not kind.startswith(("application/json", "text/plain")):
        return ""  # an HTML error page or a feed says nothing useful on one line
    text = " ".join(response.text.split())
    return f": {text[:200]}" if text else ""


def fetch(
    url: str,
    client: httpx.Client | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 1.0,
    max_retry_after: float = MAX_RETRY_AFTER,
    sleep: Callable[[float], None] = time.sleep,
) -> httpx.Response:
    """GET `url`, retrying 429/5xx and connection errors; raise FetchError when it finally fails.

    `retries` counts the attempts after the first. Waits grow as `backoff * 2**n` seconds unless the
    server's `Retry-After` says otherwise (capped at `max_retry_after`). A 4xx other than 429 is
    not retried; the FetchError carries `.url`, `.status` and `.body` so a caller can read an
    error document (the arXiv API explains a bad query in its 400 body).
    """
    import httpx

    own = client is None
    if client is None:
        client = httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=timeout)
    headers = {}
    if client.headers.get("user-agent", "").startswith("python-httpx"):
        headers["User-Agent"] = USER_AGENT
    shown = str(httpx.URL(url, params=params)) if params else url
    attempts = max(0, retries) + 1
    try:
        for attempt in range(attempts):
            wait = backoff * 2**attempt
            try:
                response = client.get(
                    url, params=params, headers=headers, timeout=timeout, follow_redirects=True
                )
            except (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.InvalidURL) as e:
                raise _error(shown, f"{_describe(e)}; check the URL", None) from e
            except httpx.TransportError as e:  # connection refused, DNS, timeouts: worth a retry
                problem, last = _describe(e), None
            else:
                last = response
                if response.is_success:
                    log.debug(
                        "GET %s: %d (%d bytes)", shown, response.status_code, len(response.content)
                    )
                    return response
                problem = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
                if response.status_code not in RETRY_STATUSES:
                    raise _error(shown, f"{problem}{_snippet(response)}; check the URL", response)
                asked = _retry_after(response.headers.get("retry-after"))
                if asked is not None:
                    if asked > max_retry_after:
                        raise _error(
                            shown,
                            f"{problem}, server asks to retry after {asked:.0f} s; try again later",
                            response,
                        )
                    wait = asked
            if attempt + 1 < attempts:
                log.info("GET %s: %s; retrying in %.1f s", shown, problem, wait)
                sleep(wait)
        raise _error(
            shown,
            f"{problem} after {attempts} attempt(s); check the URL or try again later",
            last,
        )
    finally:
        if own:
            client.close()


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _error(url: str, problem: str, response: httpx.Response | None) -> FetchError:
    err = FetchError(f"{url}: {problem}")
    err.url = url  # type: ignore[attr-defined]
    err.status = response.status_code if response is not None else None  # type: ignore[attr-defined]
    err.body = response.content if response is not None else b""  # type: ignore[attr-defined]
    return err
