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
def test_byline_shows_upvotes_only_when_there_are_some(upvotes: int | None, byline: str) -> None:
    paper = Paper(id="2601.00001", title="T", authors=("Ada Lovelace",), upvotes=upvotes)
    assert paper_view(paper).byline == byline


def numbered(n: int, **kw: object) -> Paper:
    return Paper(id=f"2611.{n:05d}", title=f"Paper {n}", **kw)  # type: ignore[arg-type]


def test_top_papers_are_the_most_upvoted_else_the_best_scored() -> None:
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


def test_a_link_that_is_not_http_never_reaches_the_email() -> None:
    # sources drop such links; a paper archived by an older version may still carry one
    hostile = Paper(
        id="2611.00001",
        title="Archived long ago",
        url="javascript:alert(1)",
        pdf_url="https://arxiv.org/pdf/2611.00001",
        code_url="data:text/html,x",
        project_url="JAVASCRIPT:alert(2)",
    )
    view = paper_view(hostile)
    assert view.url == "https://arxiv.org/pdf/2611.00001"
    assert [(link.label, link.url) for link in view.links] == [
        ("PDF", "https://arxiv.org/pdf/2611.00001")
    ]
