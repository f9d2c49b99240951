"""The Atom feed of archived issues (RFC 4287), for `/feed.xml`.

Built with ElementTree, which escapes every text and attribute, so a paper title holding `<` or
`&` cannot break the XML. Each entry's content is the issue's paper list as escaped HTML, which
feed readers show as the web version does.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jinja2

    from newsletter.config import Config
    from newsletter.store.schema import ArchivedIssue

log = logging.getLogger(__name__)

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_TYPE = "application/atom+xml; charset=utf-8"
ENTRY_TEMPLATE = "feed_entry.html"

ET.register_namespace("", ATOM_NS)


def _el(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    child = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text is not None:
        child.text = text
    return child


def _stamp(moment: datetime) -> str:
    """Return an RFC 3339 time in UTC, as Atom wants it."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_url(config: Config, issue_id: str) -> str:
    return f"{config.base_url}/issues/{issue_id}"


def atom_feed(
    config: Config,
    archived: Sequence[ArchivedIssue],
    env: jinja2.Environment,
    *,
    now: datetime,
) -> bytes:
    """Return the Atom document of `archived` (newest first) as UTF-8 bytes."""
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", config.lang)
    _el(feed, "id", f"{config.base_url}/feed.xml")
    _el(feed, "title", config.title)
    _el(feed, "subtitle", config.description)
    newest = max((a.created_at for a in archived), default=now)
    _el(feed, "updated", _stamp(newest))
    author = _el(feed, "author")
    _el(author, "name", config.sender.name or config.title)
    _el(feed, "link", rel="self", type="application/atom+xml", href=f"{config.base_url}/feed.xml")
    _el(feed, "link", rel="alternate", type="text/html", href=f"{config.base_url}/issues")
    _el(feed, "generator", "newsletter")
    template = env.get_template(ENTRY_TEMPLATE)
    for item in archived:
        issue = item.issue
        url = issue_url(config, issue.id)
        entry = _el(feed, "entry")
        _el(entry, "id", url)
        _el(entry, "title", f"{issue.title} ({issue.id})")
        _el(entry, "link", rel="alternate", type="text/html", href=url)
        _el(entry, "published", _stamp(issue.end))
        _el(entry, "updated", _stamp(item.created_at))
        topics = ", ".join(f"{s.topic} ({s.total})" for s in issue.sections)
        _el(entry, "summary", f"{issue.paper_count} papers: {topics}")
        html = template.render(issue=issue, url=url)
        _el(entry, "content", html, type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
