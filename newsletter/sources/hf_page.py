"""The text of a Hugging Face Daily Papers page: title and abstract blocks under a short header.

The page text (select all, copy, paste into a file) looks like

    new
    Get trending papers in your email inbox!
    Subscribe
    byAK and the research community
    Apr 28
    <title>
    <abstract>
    <title>
    ...

with a blank line between blocks. There is no arXiv id, so ids come from the title hash. The
date line has no year: it is taken as the latest such date not after `today` (default: the
current UTC date), which is right for a page saved within the year it shows.
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone

from newsletter.errors import SourceError
from newsletter.models import Paper
from newsletter.sources.normalize import make_paper

log = logging.getLogger(__name__)

SOURCE = "hf_page"

# The page chrome above the first paper, casefolded, spaces removed ("byAK" / "by AK" both match).
HEADER_LINES = frozenset(
    {
        "new",
        "gettrendingpapersinyouremailinbox!",
        "subscribe",
        "byakandtheresearchcommunity",
        "dailypapers",
    }
)
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DATE_LINE = re.compile(
    r"^(?P<month>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})(?:,?\s+(?P<year>\d{4}))?$"
)
# A title is one line, and no real title runs this long: a longer block means the blocks are off.
MAX_TITLE_CHARS = 400


def parse_date_line(line: str, today: date) -> date | None:
    """Return the date a line like "Apr 28" (or "Apr 28, 2026") names, else None."""
    match = _DATE_LINE.match(line.strip())
    if match is None or match["month"].lower() not in _MONTHS:
        return None
    month, day = _MONTHS.index(match["month"].lower()) + 1, int(match["day"])
    if match["year"]:
        try:
            return date(int(match["year"]), month, day)
        except ValueError:
            return None
    # No year on the page: the latest such day not after `today` (Feb 29 looks back to a leap year).
    for year in range(today.year, today.year - 8, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    return None


def _blocks(text: str) -> list[tuple[int, str]]:
    """Split text into (first line number, block) pairs on blank lines."""
    out: list[tuple[int, str]] = []
    lines: list[str] = []
    first = 0
    for number, raw in enumerate([*text.splitlines(), ""], 1):
        if raw.strip():
            first = first if lines else number
            lines.append(raw.strip())
        elif lines:
            out.append((first, "\n".join(lines)))
            lines = []
    return out


def parse_page(
    text: str, name: str = "page", *, today: date | datetime | None = None
) -> list[Paper]:
    """Parse Daily Papers page text into papers; raise SourceError if there are none."""
    if today is None:
        today = datetime.now(timezone.utc).date()
    elif isinstance(today, datetime):
        today = today.date()
    day: date | None = None
    papers: list[Paper] = []
    title: tuple[int, str] | None = None
    started = False
    for line, block in _blocks(text.lstrip("\ufeff")):
        one_line = "\n" not in block
        if one_line and not started and block.replace(" ", "").casefold() in HEADER_LINES:
            continue
        found = parse_date_line(block, today) if one_line and title is None else None
        if found is not None:
            day = found
            continue
        if title is None:
            if len(block) > MAX_TITLE_CHARS:
                raise SourceError(
                    f"{name}: line {line}: expected a paper title, found a {len(block)}-character "
                    "paragraph; each paper needs a title block then an abstract block"
                )
            title, started = (line, block), True
            continue
        papers.append(_paper(title[1], block, day))
        title = None
    if title is not None:
        # The page ended on a title: keep the paper, it only lacks an abstract.
        log.warning("%s: line %d: paper '%s' has no abstract", name, title[0], title[1])
        papers.append(_paper(title[1], "", day))
    if not papers:
        raise SourceError(
            f"{name}: no papers found; expected Daily Papers page text (title and abstract "
            "blocks separated by blank lines)"
        )
    log.debug("%s: %d papers", name, len(papers))
    return papers


def _paper(title: str, abstract: str, day: date | None) -> Paper:
    # make_paper joins a title that a copy wrapped over several lines.
    return make_paper(title, abstract=abstract, published=day, source=SOURCE)
