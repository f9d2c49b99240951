"""The web side (`newsletter serve`): sign-up with double opt-in, confirm, one-click unsubscribe,
preferences, the issue archive and its Atom feed. A Starlette app served by uvicorn.

    create_app(config)                  the ASGI app (tests drive it with Starlette's TestClient)
    serve(config, host, port, dev)      run it; refuses to start without a secret key

The handlers live in `web.archive` (public pages) and `web.subscribe` (subscription pages); the
store work behind them in `web.actions`; headers, rate limits and the CSRF reasoning in
`web.security`. Confirmation emails go out from the app's own mail worker (`web.mailer`), which
runs while the app runs (its lifespan), never from a page.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from newsletter import resources
from newsletter.audience import tokens
from newsletter.errors import SecretKeyError
from newsletter.store.state import Store
from newsletter.web.actions import Subscriptions
from newsletter.web.archive import feed, home, issue_page, issues_index
from newsletter.web.mailer import Mailer, confirmation_transport
from newsletter.web.pages import WebState, http_error, server_error, template_environment
from newsletter.web.security import BodyLimit, RateLimiter, SecurityHeaders
from newsletter.web.subscribe import (
    confirm,
    confirm_page,
    preferences,
    preferences_page,
    resend,
    subscribe,
    unsubscribe,
    unsubscribe_page,
)

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.delivery.transport import Transport

log = logging.getLogger(__name__)

STATIC_DIR = resources.templates_dir() / "web" / "static"
DEV_NOTICE = (
    "dev mode: signing links with a throwaway key made for this process; links in emails stop "
    f"working when it stops. Set {tokens.ENV_VAR} for real use."
)


def routes() -> list[Route | Mount]:
    return [
        Route("/", home, methods=["GET"]),
        Route("/subscribe", home, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm_page, methods=["GET"]),
        Route("/confirm", confirm, methods=["POST"]),
        Route("/confirm/resend", resend, methods=["POST"]),
        Route("/unsubscribe", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe", unsubscribe, methods=["POST"]),
        Route("/preferences", preferences_page, methods=["GET"]),
        Route("/preferences", preferences, methods=["POST"]),
        Route("/issues", issues_index, methods=["GET"]),
        Route("/issues/{issue_id}", issue_page, methods=["GET"]),
        Route("/feed.xml", feed, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]


def create_app(
    config: Config,
    *,
    keys: tokens.SecretKeys | None = None,
    store: Store | None = None,
    transport_factory: Callable[[], Transport] | None = None,
    clock: Callable[[], datetime] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Starlette:
    """Build the web app: keys from the environment and the store of the config unless given.

    `clock` (default: the store's) drives token ages, the resend limit and the per-IP limit,
    so tests can move time without sleeping. The mail worker starts with the app's lifespan
    (uvicorn runs it; a test may call `app.state.web.mailer.run_once()` instead).
    """
    keys = keys or tokens.SecretKeys.from_env(environ)
    owned = store is None
    store = store or Store.from_settings(config.state_settings())
    clock = clock or store.clock
    subs = Subscriptions(config, store, keys, clock=clock)
    limiter = RateLimiter(config.web.rate_limit_per_ip, 3600.0, lambda: clock().timestamp())
    env = template_environment(config)
    mailer = Mailer(
        config,
        env,
        store,
        subs.confirm_link,
        transport_factory or (lambda: confirmation_transport(config)),
        clock,
    )
    web = WebState(config=config, store=store, subs=subs, env=env, limiter=limiter, mailer=mailer)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        mailer.start()
        try:
            yield
        finally:
            mailer.stop()
            if owned:
                store.close()

    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(SecurityHeaders, static_prefix=f"{web.root}/static/"),
            Middleware(BodyLimit, limit=64 * 1024),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.web = web
    return app


def server_keys(dev: bool, environ: Mapping[str, str] | None = None) -> tokens.SecretKeys:
    """Return the signing keys for `serve`: from the environment, or a throwaway one with --dev."""
    try:
        return tokens.SecretKeys.from_env(environ)
    except SecretKeyError:
        if not dev:
            raise SecretKeyError(
                f"{tokens.ENV_VAR} is not set: `newsletter serve` signs the links in its emails "
                f"with it; set it to a long random string (python -c 'import secrets; "
                f"print(secrets.token_urlsafe(32))'), or run `newsletter serve --dev` for a "
                "local trial"
            ) from None
    print(DEV_NOTICE, file=sys.stderr)
    return tokens.SecretKeys([secrets.token_urlsafe(32)])


def serve(config: Config, host: str = "127.0.0.1", port: int = 8000, dev: bool = False) -> None:
    """Serve the subscription pages and the archive until interrupted."""
    keys = server_keys(dev)
    base = urlsplit(config.base_url)
    if config.base_url_is_loopback and (base.port or 80) != port:
        # the links in confirmation emails point at base_url, not at this server
        print(
            f"warning: base_url is {config.base_url} but the server listens on port {port}; "
            "links in emails will not reach it (set base_url in the config)",
            file=sys.stderr,
        )
    app = create_app(config, keys=keys)
    log.info("serving %s on http://%s:%d", config.title, host, port)
    # proxy_headers: behind a reverse proxy on this machine the client IP (for the per-IP
    # limit) comes from X-Forwarded-For; uvicorn trusts it only from FORWARDED_ALLOW_IPS
    # no access log: its lines would carry the unsubscribe and preference tokens of every link
    uvicorn.run(
        app, host=host, port=port, proxy_headers=True, server_header=False, access_log=False
    )
