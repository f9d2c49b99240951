from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from newsletter.config import ArxivSource, FileSource, HfDailySource, UrlSource
from newsletter.errors import FetchError, SourceError
from newsletter.sources import KINDS, arxiv, detect_kind, load_papers, read_source, read_sources
from tests.support.paths import SAMPLES

NOW = datetime(2026, 6, 12, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def _no_arxiv_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep arXiv's 3 s spacing out of these tests (the limiter has its own test)."""
    monkeypatch.setattr(arxiv, "LIMITER", arxiv.RateLimiter(0.0, sleep=lambda s: None))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("daily-papers-page.txt", "hf_page"),
        ("hf-daily-papers-api.json", "hf_api"),
        ("arxiv-api-query.xml", "arxiv"),
        ("arxiv-api-error.xml", "arxiv"),
        ("arxiv-api-empty.xml", "arxiv"),
        ("arxiv-rss-cs.AI.xml", "arxiv"),
        ("arxiv-rss-multi-announce-types.xml", "arxiv"),
        ("arxiv-atom-feed-cs.AI.xml", "arxiv"),
    ],
)
def test_detect_kind_of_every_sample_even_under_another_name(name: str, kind: str) -> None:
    data = (SAMPLES / name).read_bytes()
    assert detect_kind(data, name) == kind
    assert detect_kind(data, "download.bin") == kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b'[{"title": "A"}]', "papers"),
        (b'{"title": "A"}\n{"title": "B"}\n', "papers"),
        (b"# mine\n- title: A\n", "papers"),
        (b"\xef\xbb\xbf- title: A\n", "papers"),
        (b"A Title\n\nAn abstract.\n", "hf_page"),
    ],
)
def test_detect_kind_of_paper_lists_and_page_text(data: bytes, kind: str) -> None:
    assert detect_kind(data, "x") == kind


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<!DOCTYPE html><html><body>Daily Papers</body></html>", r"^p: an HTML page"),
        (b"<?xml version='1.0'?>\n<!-- c -->\n<svg/>", r"^p: XML with root <svg> is not an RSS"),
        (b"  \n", r"^p: the file is empty"),
    ],
)
def test_detect_kind_refuses_what_no_parser_reads(data: bytes, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        detect_kind(data, "p")


def test_read_source_of_a_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(SourceError) as info:
        read_source(str(missing))
    assert (
        str(info.value) == f"{missing}: no such file; give a file path, an http(s) URL or `sample`"
    )


def test_read_source_rejects_an_unknown_kind() -> None:
    with pytest.raises(SourceError, match=r"^unknown kind 'rss'; use one of hf_page, hf_api"):
        read_source("sample", kind="rss")
    assert KINDS == ("hf_page", "hf_api", "arxiv", "papers")


def test_a_forced_kind_wins_over_detection() -> None:
    with pytest.raises(SourceError, match="not an RSS or Atom feed"):
        read_source(str(SAMPLES / "hf-daily-papers-api.json"), kind="arxiv")


def test_an_xml_file_that_is_not_a_feed_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "books.xml"
    path.write_text("<?xml version='1.0'?><catalog><book/></catalog>", encoding="utf-8")
    with pytest.raises(SourceError, match=rf"^{path}: XML with root <catalog>"):
        read_source(str(path))


def test_read_source_over_a_real_local_http_server(sample_server: str) -> None:
    page = read_source(f"{sample_server}/daily-papers-page.txt", now=NOW)
    assert len(page) == 83
    assert page[0].published == datetime(2026, 4, 28, tzinfo=timezone.utc)
    rss = read_source(f"{sample_server}/arxiv-rss-cs.AI.xml")
    assert [p.id for p in rss] == ["2604.21935", "2604.21936", "2604.21937"]
    api = read_source(f"{sample_server}/hf-daily-papers-api.json")
    assert len(api) == 30


def test_read_source_url_errors_name_the_url(sample_server: str) -> None:
    url = f"{sample_server}/missing.json"
    with pytest.raises(FetchError, match=rf"^{url}: HTTP 404"):
        read_source(url)


def test_read_source_url_with_an_arxiv_error_body_quotes_arxiv() -> None:
    error = (SAMPLES / "arxiv-api-error.xml").read_bytes()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=error)

    url = "https://export.arxiv.org/api/query?id_list=abc"
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(SourceError, match=r"arXiv API error: incorrect id format for abc"),
    ):
        read_source(url, client=client)


def test_read_sources_dedupes_across_sources(tmp_path: Path) -> None:
    extra = tmp_path / "extra.jsonl"
    rows = [
        {"title": "  improved distribution matching distillation for FAST image synthesis "},
        {"id": "2604.21935v2", "title": "Math Takes Two", "code_url": "https://github.com/x/y"},
    ]
    extra.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    rss = str(SAMPLES / "arxiv-rss-cs.AI.xml")
    papers = read_sources(["sample", rss, str(extra), "sample"])
    assert len(papers) == 83 + 3
    math = next(p for p in papers if p.id == "2604.21935")
    assert math.source == "arxiv_feed"
    assert math.code_url == "https://github.com/x/y"


# -- configured sources ---------------------------------------------------------------------------


def _router(seen: list[str]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "huggingface.co":
            return httpx.Response(200, content=(SAMPLES / "hf-daily-papers-api.json").read_bytes())
        if request.url.host == "rss.arxiv.org":
            data = (SAMPLES / "arxiv-rss-multi-announce-types.xml").read_bytes()
            return httpx.Response(200, content=data)
        if request.url.host == "papers.example.org":
            return httpx.Response(200, content=(SAMPLES / "arxiv-rss-cs.AI.xml").read_bytes())
        return httpx.Response(404)  # not retried, so the test does not wait

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_load_papers_reads_every_kind_of_spec_and_dedupes(tmp_path: Path) -> None:
    picked = tmp_path / "picked.yaml"
    picked.write_text(
        "- id: 2609.26811v3\n  title: The Drift Contract\n  upvotes: 9\n"
        "- title: Light  schrödinger bridge\n",
        encoding="utf-8",
    )
    specs = [
        HfDailySource(),
        ArxivSource(categories=["cs.LG", "stat.ML"], announce_types=["new", "cross"]),
        FileSource(path=str(picked)),
        FileSource(path=str(SAMPLES / "daily-papers-page.txt")),
        UrlSource(url="https://papers.example.org/today.xml"),
    ]
    seen: list[str] = []
    with _router(seen) as client:
        papers = load_papers(specs, client=client, now=NOW)
    # 30 HF + 3 arXiv (the replacement is skipped) + 83 page + 3 URL; the file's two are duplicates.
    assert len(papers) == 30 + 3 + 83 + 3
    # the 7 days before NOW span two ISO weeks; the recorded payload answers both
    assert seen[:2] == [
        "https://huggingface.co/api/daily_papers?week=2026-W23&p=0&limit=100",
        "https://huggingface.co/api/daily_papers?week=2026-W24&p=0&limit=100",
    ]
    assert seen[2] == "https://rss.arxiv.org/rss/cs.LG+stat.ML"
    drift = next(p for p in papers if p.id == "2609.26811")
    assert (drift.source, drift.upvotes) == ("arxiv_feed", 9)
    assert not any(p.announce_type == "replace" for p in papers)
    [light] = [p for p in papers if p.title.casefold() == "light schrödinger bridge"]
    assert (light.title, light.source) == ("Light schrödinger bridge", "file")  # first seen wins
    assert light.abstract.startswith("Despite the recent advances in the field")


def test_a_failing_source_is_logged_and_the_others_still_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    specs = [FileSource(path=str(tmp_path / "gone.json")), HfDailySource()]
    with _router([]) as client, caplog.at_level(logging.ERROR):
        papers = load_papers(specs, client=client, now=NOW)
    assert len(papers) == 30
    assert f"source {tmp_path / 'gone.json'} failed (the others still count): " in caplog.text


def test_when_every_source_fails_the_error_is_raised(tmp_path: Path) -> None:
    specs = [UrlSource(url="https://down.example.org/papers.json")]
    with (
        _router([]) as client,
        pytest.raises(FetchError, match=r"^https://down\.example\.org/papers\.json: HTTP 404"),
    ):
        load_papers(specs, client=client)


def test_no_sources_means_no_papers() -> None:
    assert load_papers([]) == []
