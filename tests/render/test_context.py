from __future__ import annotations

import pytest

from newsletter.models import Paper
from newsletter.render.context import paper_view


@pytest.mark.parametrize(
    ("upvotes", "byline"),
    [
        (None, "Ada Lovelace"),
        (0, "Ada Lovelace"),
        (1, "Ada Lovelace · 1 upvote"),
        (12345, "Ada Lovelace · 12,345 upvotes"),
    ],
)
def test_byline_shows_upvotes_only_when_there_are_some(upvotes: int | None, byline: str):
    paper = Paper(id="2601.00001", title="T", authors=("Ada Lovelace",), upvotes=upvotes)
    assert paper_view(paper).byline == byline
