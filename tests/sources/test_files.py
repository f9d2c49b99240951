from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter.errors import SourceError
from newsletter.sources import read_source
from newsletter.sources.files import parse_papers

PAPERS = [
    {
        "id": "2604.21935v1",
        "title": "Math Takes Two",
        "abstract": "A benchmark.",
        "authors": ["Michael Cooper", "Samuel Cooper"],
        "code_url": "https://github.com/example/math-takes-two",
        "published": "2026-04-27",
        "upvotes": 5,
    },
    {
        "title": "A paper with only a title and a comma-separated author string",
        "authors": "Ada Lovelace, Charles Babbage",
        "url": "https://example.org/paper",
        "published": "2026-04-28T10:30:00Z",
    },
]

YAML_TEXT = """\
# papers picked by hand
- id: https://arxiv.org/abs/2604.21935v1
  title: Math Takes Two
  abstract: >
    A benchmark.
  authors: [Michael Cooper, Samuel Cooper]
  code_url: https://github.com/example/math-takes-two
  published: 2026-04-27
  upvotes: 5
- title: A paper with only a title and a comma-separated author string
  authors: Ada Lovelace, Charles Babbage
  url: https://example.org/paper
  published: 2026-04-28T10:30:00Z
"""


def _check_two(papers: list) -> None:
    a, b = papers
    assert a.id == "2604.21935"
    assert (a.title, a.abstract) == ("Math Takes Two", "A benchmark.")
    assert a.authors == ("Michael Cooper", "Samuel Cooper")
    assert a.code_url == "https://github.com/example/math-takes-two"
    assert a.pdf_url == "https://arxiv.org/pdf/2604.21935"
    assert a.published == datetime(2026, 4, 27, tzinfo=timezone.utc)
    assert a.upvotes == 5
    assert b.id.startswith("title:")
    assert b.authors == ("Ada Lovelace", "Charles Babbage")
    assert b.url == "https://example.org/paper"
    assert b.pdf_url is None
    assert b.published == datetime(2026, 4, 28, 10, 30, tzinfo=timezone.utc)
    assert {a.source, b.source} == {"file"}


def test_json_list(tmp_path: Path) -> None:
    path = tmp_path / "papers.json"
    path.write_text(json.dumps(PAPERS, indent=2), encoding="utf-8")
    _check_two(read_source(str(path)))


def test_json_lines(tmp_path: Path) -> None:
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(json.dumps(p) for p in PAPERS) + "\n\n", encoding="utf-8")
    _check_two(read_source(str(path)))


def test_yaml_list(tmp_path: Path) -> None:
    path = tmp_path / "papers.yaml"
    path.write_text(YAML_TEXT, encoding="utf-8")
    _check_two(read_source(str(path)))


def test_content_decides_not_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "picked.txt"
    path.write_text(YAML_TEXT, encoding="utf-8")
    _check_two(read_source(str(path)))


def test_eval_shaped_json_lines_keep_ids_and_categories() -> None:
    # The shape of the labelled eval export: id, title, abstract, categories, primary_category.
    rows = [
        {
            "id": "astro-ph/0601001",
            "title": "Frequency of Hot Jupiters",
            "abstract": "We derive the frequencies.",
            "categories": ["astro-ph"],
            "primary_category": "astro-ph",
        },
        {
            "id": "2403.00001",
            "title": "Second",
            "abstract": "An abstract.",
            "categories": "cs.LG cs.CL stat.ML",
            "primary_category": "cs.CL",
            "label": "an extra field that is ignored",
        },
    ]
    text = "\n".join(json.dumps(r) for r in rows)
    a, b = parse_papers(text.encode(), "eval.jsonl")
    assert (a.id, a.categories, a.url) == (
        "astro-ph/0601001",
        ("astro-ph",),
        "https://arxiv.org/abs/astro-ph/0601001",
    )
    assert (b.id, b.categories) == ("2403.00001", ("cs.CL", "cs.LG", "stat.ML"))


def test_a_papers_wrapper_object_is_read() -> None:
    data = json.dumps({"papers": PAPERS}).encode()
    assert len(parse_papers(data, "wrapped.json")) == 2


# -- bad input: one line naming the file and the line or item ------------------------------------


def test_truncated_json_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "papers.json"
    path.write_text('[\n  {"title": "A"},\n  {"ti', encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: not valid JSON at line 3 column 4: Unterminated string")
    assert message.endswith("the file ends early, is it complete?")
    assert "\n" not in message


def test_broken_json_in_the_middle_is_not_called_truncated() -> None:
    with pytest.raises(SourceError) as info:
        parse_papers(b'[{"title" "A"}, {"title": "B"}]', "p.json")
    assert str(info.value) == "p.json: not valid JSON at line 1 column 11: Expecting ':' delimiter"


def test_json_lines_paper_without_title_names_the_line(tmp_path: Path) -> None:
    lines = [json.dumps({"title": f"Paper {n}"}) for n in range(3)]
    lines.append(json.dumps({"id": "2604.00001", "abstract": "no title here"}))
    path = tmp_path / "papers.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_source(str(path))
    assert str(info.value) == f"{path}: line 4: paper has no title"


def test_json_lines_broken_line_is_named() -> None:
    data = b'{"title": "A"}\n{"title": "B"\n'
    with pytest.raises(SourceError, match=r"^p\.jsonl: line 2: not valid JSON at column 14"):
        parse_papers(data, "p.jsonl")


def test_json_list_item_without_title_names_the_item() -> None:
    data = json.dumps([{"title": "A"}, {"title": "  "}]).encode()
    with pytest.raises(SourceError, match=r"^p\.json: item 2: paper has no title$"):
        parse_papers(data, "p.json")


def test_yaml_item_without_title_names_its_line() -> None:
    text = "- title: A\n  abstract: x\n- abstract: no title\n"
    with pytest.raises(SourceError, match=r"^p\.yaml: line 3: paper has no title$"):
        parse_papers(text.encode(), "p.yaml")


def test_broken_yaml_names_the_line() -> None:
    message = r"^p\.yaml: not valid YAML at line 3: .*flow sequence that starts at line 2\)$"
    with pytest.raises(SourceError, match=message):
        parse_papers(b"- title: A\n  abstract: [unclosed\n", "p.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[1, 2]", r"^p\.json: item 1: expected a mapping with at least `title`$"),
        (b'"just a string"', r"^p\.json: expected a JSON list of papers, found str$"),
        (b'[{"title": "A", "published": "last week"}]', r"^p\.json: item 1: 'last week' is not"),
        (b'[{"title": "A", "upvotes": "lots"}]', r"^p\.json: item 1: upvotes 'lots'"),
        (b"   \n", r"^p\.json: the file is empty"),
    ],
)
def test_other_bad_papers_files(data: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        parse_papers(data, "p.json")


def test_yaml_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(SourceError, match=r"^p\.yaml: expected a list of papers"):
        parse_papers(b"title: A single mapping\n", "p.yaml")


def test_keywords_are_read_as_a_list_or_from_ai_keywords() -> None:
    text = json.dumps(
        [
            {"title": "A", "keywords": ["tool use", " web  agents ", "tool use"]},
            {"title": "B", "ai_keywords": ["diffusion"]},
            {"title": "C", "keywords": "RAG, retrieval"},
            {"title": "D"},
        ]
    )
    a, b, c, d = parse_papers(text, "papers.json")
    assert a.keywords == ("tool use", "web agents")
    assert b.keywords == ("diffusion",)
    assert c.keywords == ("RAG", "retrieval")
    assert d.keywords == ()
