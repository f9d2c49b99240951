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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.config import Config

EXAMPLE_SUBSCRIBER = "reader@example.com"
# Public on purpose: it signs example links only, and must never be a server's key.
PREVIEW_KEY = "preview-example-links-not-a-server-key"


@dataclass(frozen=True, slots=True)
class ExampleLinks:
    email: str
    unsubscribe: str
    preferences: str


def example_links(config: Config, email: str = EXAMPLE_SUBSCRIBER) -> ExampleLinks:
    """The links delivery would write for `email`, signed with the preview key."""
    from newsletter.tokens import make_token

    base = config.base_url
    return ExampleLinks(
        email,
        f"{base}/unsubscribe?token={make_token('unsubscribe', email, [PREVIEW_KEY])}",
        f"{base}/preferences?token={make_token('preferences', email, [PREVIEW_KEY])}",
    )


def fill(content: str, links: ExampleLinks, *, as_html: bool) -> str:
    """Replace the placeholders of a rendered part with `links` (escaped in HTML, as delivery)."""
    from newsletter.render import PREFERENCES_PLACEHOLDER, UNSUBSCRIBE_PLACEHOLDER

    def value(url: str) -> str:
        return html.escape(url, quote=True) if as_html else url

    return content.replace(UNSUBSCRIBE_PLACEHOLDER, value(links.unsubscribe)).replace(
        PREFERENCES_PLACEHOLDER, value(links.preferences)
    )
