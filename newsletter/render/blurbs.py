"""Short text for the email: paper summaries, author lines, and wrapping for the text twin."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.models import Paper

ELLIPSIS = "…"
MAX_AUTHORS = 3  # more than this and the line ends with "et al."
TEXT_WIDTH = 78

# A sentence ends at . ! or ? followed by space and an upper-case letter, digit or opening mark;
# "e.g. the" and "et al. (2023)" mostly survive because the next word is lower case.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
_SPACE = re.compile(r"\s+")


def shorten(text: str, limit: int) -> str:
    """Return the first sentences of `text` within `limit` characters, else cut at a word."""
    text = _SPACE.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    taken = ""
    for sentence in _SENTENCE_END.split(text):
        candidate = f"{taken} {sentence}" if taken else sentence
        if len(candidate) > limit:
            break
        taken = candidate
    # Whole sentences read best, but not when they leave most of the room empty.
    if len(taken) >= limit * 2 // 3:
        return taken
    room = limit - len(ELLIPSIS)
    cut = text[: room + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > room // 2 else text[:room]
    return cut.rstrip(" ,;:-–—(") + ELLIPSIS


def summarize(paper: Paper, limit: int) -> str:
    """Return the paper's summary (the source's own when it has one) within `limit` characters."""
    return shorten(paper.summary or paper.abstract or "", limit)


def author_line(authors: Sequence[str], most: int = MAX_AUTHORS) -> str:
    """Return "A, B, C et al." for more than `most` authors, else every name."""
    if len(authors) > most:
        return ", ".join(authors[:most]) + " et al."
    return ", ".join(authors)


def wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """Wrap `text` to `width` columns without ever breaking a word or a URL."""
    wrapper = textwrap.TextWrapper(
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,  # a URL split over two lines is no longer a link
        break_on_hyphens=False,
    )
    return "\n".join(wrapper.wrap(_SPACE.sub(" ", text).strip()))


def tidy_text(text: str) -> str:
    """Strip trailing spaces and squeeze blank runs so template whitespace cannot leak out."""
    lines = [line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"
