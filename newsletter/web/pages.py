"""What the web handlers share: the app's state, the page templates and the error pages.

Page templates live in `templates/web/` (a `templates_dir` in the config may override any of
them, as it does for the email). Autoescaping is on for every template but the `.txt` twin of the
confirmation email, so nothing a visitor or a paper source wrote reaches a page unescaped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import jinja2
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates

from newsletter import resources
from newsletter.web.confirm_mail import send_confirmation
from newsletter.web.security import RateLimiter, add_headers

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.delivery.transport import Transport
    from newsletter.store.state import Store
    from newsletter.web.actions import Subscriptions

log = logging.getLogger(__name__)

ARCHIVE_CACHE = {"Cache-Control": "public, max-age=300"}
NOINDEX = {"X-Robots-Tag": "noindex"}  # pages reached through a personal token
_STATUS_TEXT = {
    400: ("Bad request", "The request could not be read."),
    403: ("Not allowed", "This form can only be sent from this site's own pages."),
    404: ("Page not found", "There is no page at this address."),
    405: ("Not allowed", "This page does not accept that kind of request."),
    413: ("Too large", "What was sent is too large."),
    429: ("Too many requests", "Too many sign-ups from your network; try again in an hour."),
}


def web_template_dirs(config: Config) -> list[str]:
    """Return the folders page templates load from: `<templates_dir>/web`, then the bundled one."""
    return [
        str(d / "web")
        for d in resources.template_dirs(config.render_settings().templates_dir)
        if (d / "web").is_dir()
    ]


def _http_url(value: object) -> str:
    """Return a link only when it is http(s): a source could carry `javascript:` links."""
    text = str(value or "")
    return text if urlsplit(text).scheme.lower() in ("http", "https") else ""


def _day(value: datetime | None) -> str:
    return f"{value.day} {value:%b %Y}" if value is not None else ""


def template_environment(config: Config) -> jinja2.Environment:
    """Return the Jinja environment of the pages and the confirmation email."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(web_template_dirs(config)),
        autoescape=lambda name: not (name or "").endswith(".txt"),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["http_url"] = _http_url
    env.filters["day"] = _day
    return env


@dataclass
class WebState:
    """Everything a handler needs, kept on `app.state.web`."""

    config: Config
    store: Store
    subs: Subscriptions
    env: jinja2.Environment
    limiter: RateLimiter
    transport_factory: Callable[[], Transport]
    templates: Jinja2Templates = field(init=False)
    root: str = field(init=False)  # the path part of base_url ("" at a domain's top)

    def __post_init__(self) -> None:
        self.templates = Jinja2Templates(env=self.env)
        self.root = urlsplit(self.config.base_url).path.rstrip("/")

    @property
    def topic_names(self) -> list[str]:
        return [t.name for t in self.config.topics]

    def context(self) -> dict[str, Any]:
        c = self.config
        return {
            "title": c.title,
            "description": c.description,
            "lang": c.lang,
            "organisation": c.organisation,
            "root": self.root,
        }

    def confirmation_task(self, email: str) -> BackgroundTask:
        """Return the task that sends a confirmation email once the page has been answered."""
        return BackgroundTask(
            send_confirmation,
            self.config,
            self.env,
            self.transport_factory,
            email,
            self.subs.link("confirm", email),
            hours=self.config.web.confirm_max_age_hours,
            date=self.subs.clock(),
        )


def state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


def page(
    request: Request,
    name: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    """Render a page template with the site's common values."""
    st = state(request)
    values = {**st.context(), **(context or {})}
    return st.templates.TemplateResponse(
        request, name, values, status_code=status, headers=headers, background=background
    )


def message(
    request: Request,
    heading: str,
    *paragraphs: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> Response:
    """Render the plain message page: a heading and a few sentences."""
    return page(
        request,
        "message.html",
        {"heading": heading, "paragraphs": paragraphs},
        status=status,
        headers=headers,
        background=background,
    )


async def http_error(request: Request, exc: Exception) -> Response:
    """Show an HTTP error (404, 405, a malformed form) as a page of the site."""
    code = exc.status_code if isinstance(exc, HTTPException) else 400
    heading, text = _STATUS_TEXT.get(code, ("Error", "Something went wrong."))
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    return message(request, heading, text, status=code, headers=headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Answer an unexpected failure with a plain page; the traceback goes to the log only."""
    log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Error</title>"
        "<h1>Something went wrong</h1><p>Please try again later.</p></html>"
    )
    response = HTMLResponse(body, status_code=500)
    # this handler answers outside the middleware stack, so the headers are added here
    add_headers(response.headers)
    return response
