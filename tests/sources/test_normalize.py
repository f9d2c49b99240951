from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.sources.normalize import (
    arxiv_id,
    dedupe,
    make_paper,
    normalize_text,
    paper_id,
    parse_datetime,
    split_authors,
)


def test_normalize_text_composes_unicode_and_collapses_whitespace() -> None:
    decomposed = "Light  Schro\u0308dinger\n\tBridge\u00a0 "
    assert normalize_text(decomposed) == "Light Schrödinger Bridge"
    assert normalize_text(None) == ""


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("2604.21935v1", "2604.21935"),
        ("2604.21935", "2604.21935"),
        ("0704.0001v2", "0704.0001"),
        ("astro-ph/0601001v2", "astro-ph/0601001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("arXiv:2604.21935v3", "2604.21935"),
        ("oai:arXiv.org:2604.21935v1", "2604.21935"),
        ("https://arxiv.org/abs/2604.21935v3", "2604.21935"),
        ("http://arxiv.org/abs/2202.12139v1", "2202.12139"),
        ("https://arxiv.org/pdf/2604.21935v1.pdf", "2604.21935"),
        ("https://arxiv.org/pdf/astro-ph/0601001v2", "astro-ph/0601001"),
        ("https://export.arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("https://huggingface.co/papers/2606.00467", "2606.00467"),
    ],
)
def test_paper_id_takes_the_arxiv_id_without_version(ref: str, expected: str) -> None:
    assert paper_id(ref, "Any title") == expected


@pytest.mark.parametrize(
    "ref", [None, "", "12345", "https://example.com/abs/2604.21935", "my-own-id", "2604.219"]
)
def test_paper_id_falls_back_to_the_title_hash(ref: str | None) -> None:
    title = "  Light  Schrödinger-Bridge! "
    # Spelled out by hand: casefolded, punctuation to spaces, whitespace collapsed.
    expected = hashlib.sha1("light schrödinger bridge".encode()).hexdigest()[:12]
    assert paper_id(ref, title) == f"title:{expected}"
    assert arxiv_id(ref) is None


def test_title_ids_ignore_case_spacing_and_punctuation_but_not_words() -> None:
    a = paper_id(None, "Text-to-Image Diffusion: A Survey")
    assert a == paper_id(None, "text to image   diffusion a survey")
    assert a == paper_id(None, "TEXT-TO-IMAGE DIFFUSION — A SURVEY.")
    assert a != paper_id(None, "Text-to-Video Diffusion: A Survey")
    assert re.fullmatch(r"title:[0-9a-f]{12}", a)


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("Michael Cooper, Samuel Cooper", ("Michael Cooper", "Samuel Cooper")),
        ("Ada Lovelace and Charles Babbage", ("Ada Lovelace", "Charles Babbage")),
        ("A. One, B. Two, and C. Three", ("A. One", "B. Two", "C. Three")),
        ("John Smith, Jr., Jane Doe", ("John Smith, Jr.", "Jane Doe")),
        ("X Li (MIT, CSAIL), Y Wu", ("X Li (MIT, CSAIL)", "Y Wu")),
        ("Alexander Andersen", ("Alexander Andersen",)),
        (["  Ana  Ruiz ", "", "Bo Li"], ("Ana Ruiz", "Bo Li")),
        ("", ()),
    ],
)
def test_split_authors(value: str | list[str], names: tuple[str, ...]) -> None:
    assert split_authors(value) == names


def test_make_paper_normalises_and_derives_arxiv_links() -> None:
    paper = make_paper(
        " Math\nTakes  Two ",
        id="oai:arXiv.org:2604.21935v1",
        authors="Michael Cooper, Samuel Cooper",
        abstract="Although  language\nmodels ...",
        published="2026-04-27T00:00:00.000Z",
        upvotes="12",
        categories="cs.AI cs.LG cs.AI",
        source="test",
    )
    assert paper.id == "2604.21935"
    assert paper.title == "Math Takes Two"
    assert paper.abstract == "Although language models ..."
    assert paper.url == "https://arxiv.org/abs/2604.21935"
    assert paper.pdf_url == "https://arxiv.org/pdf/2604.21935"
    assert paper.published == datetime(2026, 4, 27, tzinfo=timezone.utc)
    assert paper.upvotes == 12
    assert paper.categories == ("cs.AI", "cs.LG")
    assert paper.arxiv_id == "2604.21935"


def test_make_paper_without_arxiv_id_has_no_invented_links() -> None:
    paper = make_paper("A title only")
    assert paper.id.startswith("title:")
    assert (paper.url, paper.pdf_url, paper.arxiv_id) == (None, None, None)


@pytest.mark.parametrize("title", [None, "", "   \n "])
def test_make_paper_needs_a_title(title: str | None) -> None:
    with pytest.raises(ValueError, match="paper has no title"):
        make_paper(title)


def test_make_paper_rejects_bad_values_with_the_value() -> None:
    with pytest.raises(ValueError, match="upvotes 'many'"):
        make_paper("T", upvotes="many")
    with pytest.raises(ValueError, match="'28/04/2026' is not an ISO date"):
        make_paper("T", published="28/04/2026")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-04-28", datetime(2026, 4, 28, tzinfo=timezone.utc)),
        (date(2026, 4, 28), datetime(2026, 4, 28, tzinfo=timezone.utc)),
        ("2026-06-12T00:00:00.000Z", datetime(2026, 6, 12, tzinfo=timezone.utc)),
        ("2025-08-20T04:00:19.910019+00:00", datetime(2025, 8, 20, 4, 0, 19, 910019, timezone.utc)),
        ("2026-04-27T00:00:00-04:00", datetime(2026, 4, 27, 4, tzinfo=timezone.utc)),
        (
            datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 1, 1, 10, tzinfo=timezone.utc),
        ),
        ("", None),
        (None, None),
    ],
)
def test_parse_datetime_gives_aware_utc(value: object, expected: datetime | None) -> None:
    got = parse_datetime(value)
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(0)


def test_dedupe_merges_arxiv_versions_keeping_the_first_and_filling_gaps() -> None:
    first = make_paper("Math Takes Two", id="2604.21935v1", abstract="From the feed.", source="a")
    later = make_paper(
        "Math takes two (HF)",
        id="https://arxiv.org/abs/2604.21935v2",
        abstract="Other abstract.",
        upvotes=7,
        code_url="https://github.com/x/y",
        summary="Short.",
        source="b",
    )
    other = make_paper("Something else", id="2604.00001")
    out = dedupe([first, other, later])
    assert [p.id for p in out] == ["2604.21935", "2604.00001"]
    merged = out[0]
    assert (merged.title, merged.abstract, merged.source) == (
        "Math Takes Two",
        "From the feed.",
        "a",
    )
    assert (merged.upvotes, merged.code_url, merged.summary) == (
        7,
        "https://github.com/x/y",
        "Short.",
    )


def test_dedupe_merges_titles_that_differ_in_case_and_spacing() -> None:
    a = make_paper("Light Schrödinger Bridge", source="hf_page")
    b = make_paper("  light   SCHRÖDINGER bridge ", abstract="Now with an abstract.", source="file")
    out = dedupe([a, b])
    assert len(out) == 1
    assert out[0].title == "Light Schrödinger Bridge"
    assert out[0].abstract == "Now with an abstract."


def test_dedupe_upgrades_a_title_id_to_the_arxiv_id_of_the_same_paper() -> None:
    page = make_paper("Math Takes Two", source="hf_page")
    feed = make_paper("Math takes two", id="2604.21935v1", source="arxiv_feed")
    out = dedupe([page, feed, make_paper("MATH TAKES TWO")])
    assert len(out) == 1
    assert out[0].id == "2604.21935"
    assert out[0].source == "hf_page"
    assert out[0].pdf_url == "https://arxiv.org/pdf/2604.21935"


def test_dedupe_keeps_different_arxiv_papers_that_share_a_title() -> None:
    out = dedupe(
        [make_paper("Introduction", id="2601.00001"), make_paper("Introduction", id="2601.00002")]
    )
    assert [p.id for p in out] == ["2601.00001", "2601.00002"]


# -- properties -------------------------------------------------------------------------------

_ids = st.from_regex(r"\A[0-9]{4}\.[0-9]{4,5}\Z")
_ascii_words = st.lists(st.from_regex(r"\A[A-Za-z0-9]{1,8}\Z"), min_size=1, max_size=8)
_words = st.lists(
    st.text(st.characters(blacklist_categories=("Zs", "Zl", "Zp", "Cc", "Cs")), min_size=1),
    min_size=1,
    max_size=6,
)


@given(st.text())
def test_normalize_text_is_idempotent_and_tidy(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert once == once.strip()
    assert not re.search(r"\s\s", once)


@given(_ids, st.integers(1, 30))
def test_paper_id_ignores_versions_and_forms(aid: str, version: int) -> None:
    forms = [
        f"{aid}v{version}",
        f"arXiv:{aid}",
        f"oai:arXiv.org:{aid}v{version}",
        f"https://arxiv.org/abs/{aid}v{version}",
        f"https://arxiv.org/pdf/{aid}v{version}.pdf",
    ]
    assert {paper_id(f, "t") for f in forms} == {aid}


@given(_ascii_words, st.lists(st.sampled_from([" ", "  ", "\t", "\n", " - ", ": "]), min_size=8))
def test_title_id_ignores_case_and_separators(words: list[str], seps: list[str]) -> None:
    plain = " ".join(words)
    messy = "".join(w.upper() + seps[i] for i, w in enumerate(words))
    assert paper_id(None, messy) == paper_id(None, plain)


@given(_words, st.sampled_from([" \t ", "\n", "\u00a0", "   "]))
def test_title_id_ignores_whitespace_runs_in_any_script(words: list[str], sep: str) -> None:
    assert paper_id(None, sep.join(words)) == paper_id(None, " ".join(words))
