"""Short text for the email: author lines, and wrapping for the text twin.

Summaries are in `newsletter.render.contribution`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

MAX_AUTHORS = 3  # more than this and the line ends with "et al."
TEXT_WIDTH = 78
SIGNATURE = "-- "  # RFC 3676 4.3: the line before a signature

_SPACE = re.compile(r"\s+")


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
    """Strip trailing spaces and squeeze blank runs so template whitespace cannot leak out.

    The signature line "-- " keeps its space: it is how mail clients find the signature.
    """
    lines = [line if line == SIGNATURE else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"
