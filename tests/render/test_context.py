from __future__ import annotations

import pytest

from newsletter.models import Paper
from newsletter.render.context import paper_view, top_papers
from newsletter.topics.issue import make_sections


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


def numbered(n: int, **kw: object) -> Paper:
    return Paper(id=f"2611.{n:05d}", title=f"Paper {n}", **kw)  # type: ignore[arg-type]


def test_top_papers_are_the_most_upvoted_else_the_best_scored():
    voted = make_sections(
        {
            "A": [numbered(1, upvotes=5), numbered(2, upvotes=40), numbered(3)],
            "B": [numbered(4, upvotes=30), numbered(5, upvotes=1)],
        }
    )
    assert [p.id[-1] for p, _ in top_papers(voted, 3)] == ["2", "4", "1"]
    assert [s.topic for _, s in top_papers(voted, 2)] == ["A", "B"]
    scored = make_sections(
        {"A": [numbered(1), numbered(2)], "B": [numbered(3)]},
        scores={("A", "2611.00001"): 2.0, ("A", "2611.00002"): 4.0, ("B", "2611.00003"): 3.0},
    )
    assert [p.id[-1] for p, _ in top_papers(scored, 2)] == ["2", "3"]
