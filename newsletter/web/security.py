"""What every response of `newsletter serve` carries, and the limits on its form posts.

CSRF, and why there is no CSRF token. The site keeps no session: there is no cookie, no login,
nothing a browser attaches on its own, so a forged cross-site request has no ambient authority to
ride on. Every post that changes a subscriber (confirm, unsubscribe, preferences) needs the signed
token in its URL, which only the owner of the mailbox it was sent to has; a page elsewhere cannot
make one, and whoever has one may already do what the post does. The one post without a token,
the sign-up form, only records a pending address and sends at most one rate-limited confirmation
email: any HTTP client can do that directly, so a token would add nothing. As defence in depth,
`cross_site` still refuses browser posts that come from another site (Fetch metadata or Origin),
so no other page can make its visitors' browsers sign people up and spread the per-IP limit
across them. The one-click unsubscribe (RFC 8058) is exempt: mail providers send it from their own
servers, and the RFC forbids asking for anything beyond the URL.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# No script at all, styles only from our own stylesheet, forms only to ourselves, never framed.
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # Pages carry tokens in their URL: never send them to another site. (`no-referrer` would also
    # make browsers send `Origin: null` on our own form posts, which `cross_site` must read.)
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
STATIC_CACHE = "public, max-age=3600"


def add_headers(
    headers: MutableHeaders | MutableMapping[str, str], path: str = "", static_prefix: str = ""
) -> None:
    """Set the security headers, and a cache policy where the handler chose none."""
    for name, value in HEADERS.items():
        headers[name] = value
    if "cache-control" not in {k.lower() for k in headers}:
        # token pages must not sit in shared caches; the stylesheet may
        static = bool(static_prefix) and path.startswith(static_prefix)
        headers["Cache-Control"] = STATIC_CACHE if static else "no-store"


class SecurityHeaders:
    """ASGI middleware: add `HEADERS` to every HTTP response, whatever produced it."""

    def __init__(self, app: ASGIApp, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.decode("latin-1").lower() for k, _ in raw}
                extra: dict[str, str] = {}
                add_headers(extra, path, self.static_prefix)
                if "cache-control" in present:
                    extra.pop("Cache-Control", None)
                drop = {k.lower().encode("latin-1") for k in extra}
                raw = [(k, v) for k, v in raw if k.lower() not in drop]
                raw += [
                    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
                ]
                message = {**message, "headers": raw}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with a 413 page.

    Our forms are a few hundred bytes; without a limit, one post could fill the memory of the
    process while the form parser buffers it. The check runs as the handler reads the body,
    so the 413 comes back as a page of the site (and a one-click unsubscribe, which ignores
    its body, still works).
    """

    def __init__(self, app: ASGIApp, limit: int = 64 * 1024) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        too_long = declared.isdigit() and int(declared) > self.limit
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            if too_long:
                raise HTTPException(413)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413)
            return message

        await self.app(scope, limited, send)


def cross_site(request: Request, base_url: str) -> bool:
    """Return True when a browser says this post came from another site (see the module doc).

    A client that sends neither Fetch metadata nor Origin (curl, a mail provider) is not a browser
    page of another site, so it passes; what it can do is limited like everyone else's.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    parts = urlsplit(base_url)
    ours = {f"{parts.scheme}://{parts.netloc}".lower()}
    host = request.headers.get("host")
    if host:
        ours.add(f"{request.url.scheme}://{host}".lower())
    return origin.lower() not in ours


def client_key(request: Request) -> str:
    """Return the rate-limit key of a request: its IP address, or its /64 for IPv6.

    One IPv6 subscriber line usually gets a whole /64, so limiting single addresses would let one
    client rotate through billions of them.
    """
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimiter:
    """Allow at most `limit` events per key within a sliding `window` of seconds (in memory).

    In memory is enough for one `serve` process; the durable limit (one confirmation email per
    address per day) lives in the state store and holds across restarts and processes.
    """

    MAX_KEYS = 50_000  # past this, keys with no recent event are dropped

    def __init__(
        self, limit: int, window: float = 3600.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Record an event for `key`; return False (recording nothing) when over the limit."""
        now = self.clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                if len(self._events) >= self.MAX_KEYS:
                    self._prune(now)
                events = self._events[key] = deque()
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def _prune(self, now: float) -> None:
        stale = [k for k, ev in self._events.items() if not ev or ev[-1] <= now - self.window]
        for key in stale:
            del self._events[key]
        log.info("rate limiter: dropped %d idle keys", len(stale))

    def __len__(self) -> int:
        return len(self._events)
