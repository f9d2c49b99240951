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
