from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.resources import sample_papers_path
from newsletter.sources import read_source
from newsletter.sources.hf_page import parse_date_line, parse_page
from tests.support.paths import SAMPLES

PAGE = SAMPLES / "daily-papers-page.txt"
HEADER = ["new", "Get trending papers in your email inbox!", "Subscribe"]
HEADER += ["byAK and the research community", "Apr 28"]
TODAY = date(2026, 5, 1)


def _lines() -> list[str]:
    """The page's non-blank lines: in this sample every title and abstract is one line."""
    return [ln for ln in PAGE.read_text(encoding="utf-8").splitlines() if ln.strip()]


def test_sample_page_gives_all_83_papers_with_exact_titles_and_abstracts() -> None:
    lines = _lines()
    assert lines[:5] == HEADER
    body = lines[5:]
    assert len(body) == 2 * 83  # the sample README: 83 papers, a title and an abstract each

    papers = parse_page(PAGE.read_text(encoding="utf-8"), "daily-papers-page.txt", today=TODAY)

    assert len(papers) == 83
    assert [p.title for p in papers] == body[0::2]
    assert [p.abstract for p in papers] == body[1::2]
    assert papers[0].title == "Improved Distribution Matching Distillation for Fast Image Synthesis"
    assert papers[0].abstract.startswith("Recent approaches have shown promises distilling")
    assert papers[0].abstract.endswith("visual quality among few-step methods.")


def test_sample_page_papers_keep_unicode_and_get_title_ids() -> None:
    papers = parse_page(PAGE.read_text(encoding="utf-8"), today=TODAY)
    assert "Light Schrödinger Bridge" in [p.title for p in papers]
    assert all(p.id.startswith("title:") for p in papers)
    assert len({p.id for p in papers}) == 83
    assert {p.source for p in papers} == {"hf_page"}
    assert {p.published for p in papers} == {datetime(2026, 4, 28, tzinfo=timezone.utc)}
    assert all(p.url is None and p.upvotes is None for p in papers)


def test_the_bundled_sample_is_the_same_page() -> None:
    assert sample_papers_path().read_bytes() == PAGE.read_bytes()
    papers = read_source("sample")
    assert len(papers) == 83
    assert papers[0].title == "Improved Distribution Matching Distillation for Fast Image Synthesis"


@pytest.mark.parametrize(
    ("line", "today", "expected"),
    [
        ("Apr 28", date(2026, 5, 1), date(2026, 4, 28)),
        ("Apr 28", date(2026, 4, 28), date(2026, 4, 28)),  # today itself is not the future
        ("Apr 28", date(2026, 4, 27), date(2025, 4, 28)),  # a day ahead: last year's
        ("Dec 31", date(2026, 1, 2), date(2025, 12, 31)),
        ("Feb 29", date(2026, 3, 1), date(2024, 2, 29)),  # back to the last leap year
        ("Sept 3", date(2026, 9, 10), date(2026, 9, 3)),
        ("Apr 28, 2024", date(2026, 5, 1), date(2024, 4, 28)),
        ("Subscribe", date(2026, 5, 1), None),
        ("Apr 31", date(2026, 5, 1), None),
        ("Foo 12", date(2026, 5, 1), None),
    ],
)
def test_date_line_takes_the_latest_such_day_not_in_the_future(
    line: str, today: date, expected: date | None
) -> None:
    assert parse_date_line(line, today) == expected


def test_published_follows_the_injected_today() -> None:
    text = "new\n\nApr 28\n\nA Title\n\nAn abstract.\n"
    before = parse_page(text, today=datetime(2026, 4, 27, 23, tzinfo=timezone.utc))
    assert before[0].published == datetime(2025, 4, 28, tzinfo=timezone.utc)


def test_windows_line_endings_and_wrapped_blocks_parse_the_same() -> None:
    text = "Subscribe\r\n\r\nApr 28\r\n\r\nA Wrapped\r\nTitle\r\n\r\nLine one\r\nline two.\r\n"
    [paper] = parse_page(text, today=TODAY)
    assert (paper.title, paper.abstract) == ("A Wrapped Title", "Line one line two.")


def test_a_last_title_without_abstract_is_kept() -> None:
    papers = parse_page("First\n\nAbstract one.\n\nSecond\n", today=TODAY)
    assert [(p.title, p.abstract) for p in papers] == [("First", "Abstract one."), ("Second", "")]
    assert papers[0].published is None  # no date line on this page


def test_text_with_no_papers_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("new\n\nSubscribe\n\nApr 28\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"notes\.txt: no papers found"):
        read_source(str(path), kind="hf_page")


def test_a_paragraph_where_a_title_belongs_names_its_line() -> None:
    text = "Title\n\nAbstract.\n\n" + "word " * 200 + "\n"
    with pytest.raises(SourceError, match=r"^page\.txt: line 5: expected a paper title"):
        parse_page(text, "page.txt", today=TODAY)
