"""Preview links: the email as an example subscriber receives it, not with placeholders.

`render_issue` leaves the unsubscribe and preferences links as placeholders that delivery fills
per subscriber. A preview fills them the same way (the same URL shape, a real signed token) for
an example subscriber, so what one previews is what a subscriber gets. The tokens are signed
with a fixed preview key that no server holds: following one shows "link not valid", never
unsubscribes anyone.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Literal

from newsletter.audience.tokens import make_token
from newsletter.models import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER

if TYPE_CHECKING:
    from newsletter.config import Config

EXAMPLE_SUBSCRIBER = "reader@example.com"
# What a real link signs is the recipient's opaque id (`store.recipients`), never the address:
# an example id of the same form (16 URL-safe characters) gives links of the same shape and length.
EXAMPLE_ID = "ExamplePreview01"
# Public on purpose: it signs example links only, and must never be a server's key.
PREVIEW_KEY = "preview-example-links-not-a-server-key"


@dataclass(frozen=True, slots=True)
class ExampleLinks:
    email: str
    unsubscribe: str
    preferences: str


def example_links(
    config: Config, *, now: datetime | None = None, email: str = EXAMPLE_SUBSCRIBER
) -> ExampleLinks:
    """The links delivery would write for `email` at `now`, signed with the preview key (the
    same `now` gives the same bytes)."""
    moment = (now or datetime.now(timezone.utc)).timestamp()
    base = config.base_url

    def token(purpose: Literal["unsubscribe", "preferences"]) -> str:
        return make_token(purpose, EXAMPLE_ID, [PREVIEW_KEY], clock=lambda: moment)

    return ExampleLinks(
        email,
        f"{base}/unsubscribe?token={token('unsubscribe')}",
        f"{base}/preferences?token={token('preferences')}",
    )


def fill(content: str, links: ExampleLinks, *, as_html: bool) -> str:
    """Replace the placeholders of a rendered part with `links` (escaped in HTML, as delivery)."""

    def value(url: str) -> str:
        return html.escape(url, quote=True) if as_html else url

    return content.replace(UNSUBSCRIBE_PLACEHOLDER, value(links.unsubscribe)).replace(
        PREFERENCES_PLACEHOLDER, value(links.preferences)
    )
