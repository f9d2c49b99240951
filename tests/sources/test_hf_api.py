from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import httpx
import pytest

from newsletter.config import HfDailySource
from newsletter.errors import SourceError
from newsletter.sources.hf_api import fetch_daily_papers, parse_daily_papers, window_params
from tests.support.paths import SAMPLES

SAMPLE = SAMPLES / "hf-daily-papers-api.json"
NOW = datetime(2026, 6, 12, 9, 30, tzinfo=timezone.utc)  # a Friday in ISO week 2026-W24


def _items() -> list[dict]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def test_sample_gives_30_papers_with_upvotes_from_the_paper_object() -> None:
    items = _items()
    papers = parse_daily_papers(SAMPLE.read_bytes(), "hf-daily-papers-api.json")
    assert len(papers) == len(items) == 30
    assert [p.id for p in papers] == [it["paper"]["id"] for it in items]
    assert [p.upvotes for p in papers] == [it["paper"]["upvotes"] for it in items]
    assert max(p.upvotes or 0 for p in papers) == 118
    assert {p.source for p in papers} == {"hf_api"}


def test_sample_fields_map_to_paper_fields() -> None:
    items = _items()
    papers = parse_daily_papers(SAMPLE.read_bytes())
    for item, paper in zip(items, papers, strict=True):
        raw = item["paper"]
        assert paper.title == " ".join(raw["title"].split())
        assert paper.abstract == " ".join(raw["summary"].split())
        assert paper.authors == tuple(a["name"] for a in raw["authors"])
        assert paper.code_url == raw.get("githubRepo")
        assert paper.project_url == raw.get("projectPage")
        assert paper.summary == " ".join(raw["ai_summary"].split())
        assert paper.keywords == tuple(dict.fromkeys(raw["ai_keywords"]))
        assert paper.url == f"https://huggingface.co/papers/{raw['id']}"
        assert paper.pdf_url == f"https://arxiv.org/pdf/{raw['id']}"
    first = papers[0]
    assert first.authors == ("Etienne Casanova", "Rafal Kocielnik", "R. Michael Alvarez")
    # submittedOnDailyAt (2026-06-12), not the arXiv publishedAt (2026-05-30)
    assert first.published == datetime(2026, 6, 12, tzinfo=timezone.utc)
    assert sum(p.code_url is not None for p in papers) == 16
    assert sum(p.project_url is not None for p in papers) == 13


def test_missing_optional_fields_are_fine_and_published_falls_back() -> None:
    data = [
        {"paper": {"id": "2604.00001", "title": "Bare", "publishedAt": "2026-04-01T00:00:00Z"}},
        {"paper": {"id": "2604.00002", "title": "Bare too"}, "publishedAt": "2026-04-02T10:00:00Z"},
    ]
    a, b = parse_daily_papers(json.dumps(data))
    assert (a.upvotes, a.code_url, a.summary, a.authors, a.abstract) == (None, None, None, (), "")
    assert a.keywords == ()
    assert a.published == datetime(2026, 4, 1, tzinfo=timezone.utc)
    assert b.published == datetime(2026, 4, 2, 10, tzinfo=timezone.utc)


def test_an_item_without_title_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    data = [{"paper": {"id": "2604.00001"}}, {"paper": {"id": "2604.00002", "title": "Kept"}}]
    with caplog.at_level(logging.WARNING):
        papers = parse_daily_papers(json.dumps(data), "api.json")
    assert [p.title for p in papers] == ["Kept"]
    assert "api.json: item 0 skipped: paper has no title" in caplog.text


def test_a_response_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(SourceError, match="api.json: expected a JSON list"):
        parse_daily_papers(b'{"error": "Invalid date"}', "api.json")
    with pytest.raises(SourceError, match=r"api.json: not valid JSON at line 1 column 3"):
        parse_daily_papers(b"[{", "api.json")


@pytest.mark.parametrize(
    ("now", "weeks"),
    [
        (NOW, ["2026-W23", "2026-W24"]),
        # a Monday morning: last week, and the few hours of the new one
        (datetime(2026, 6, 15, 8, tzinfo=timezone.utc), ["2026-W24", "2026-W25"]),
        (datetime(2027, 1, 1, tzinfo=timezone.utc), ["2026-W52", "2026-W53"]),  # 53 ISO weeks
        (datetime(2025, 12, 29, tzinfo=timezone.utc), ["2025-W52", "2026-W01"]),
    ],
)
def test_default_window_is_every_iso_week_of_the_last_7_days(
    now: datetime, weeks: list[str]
) -> None:
    assert window_params(now=now) == [{"week": w} for w in weeks]


def test_a_one_day_window_on_a_sunday_is_one_week() -> None:
    sunday = datetime(2026, 6, 14, 20, tzinfo=timezone.utc)
    assert window_params(now=sunday, days=1) == [{"week": "2026-W24"}]


def test_window_takes_one_of_date_week_month() -> None:
    assert window_params(date="2026-06-10", now=NOW) == [{"date": "2026-06-10"}]
    assert window_params(month="2026-06") == [{"month": "2026-06"}]
    with pytest.raises(SourceError, match="give one of date, week or month"):
        window_params(date="2026-06-10", week="2026-W24")


def _paging_client(pages: list[list[dict]], seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params.get("p", "0"))
        return httpx.Response(200, json=pages[page] if page < len(pages) else [])

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_fetch_pages_until_a_short_page() -> None:
    items = _items()
    pages = [items[0:10], items[10:20], items[20:25]]
    seen: list[httpx.Request] = []
    with _paging_client(pages, seen) as client:
        papers = fetch_daily_papers(HfDailySource(week="2026-W24", limit=10), client=client)
    assert [p.id for p in papers] == [it["paper"]["id"] for it in items[:25]]
    assert [dict(r.url.params) for r in seen] == [
        {"week": "2026-W24", "p": str(n), "limit": "10"} for n in range(3)
    ]


def test_default_fetch_reads_both_weeks_of_the_window() -> None:
    items = _items()
    by_week = {"2026-W23": items[:4], "2026-W24": items[2:9]}  # two papers in both weeks
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=by_week[request.url.params["week"]])

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        papers = fetch_daily_papers(HfDailySource(), client=client, now=NOW)
    assert [r.url.params["week"] for r in seen] == ["2026-W23", "2026-W24"]
    assert [p.id for p in papers] == [it["paper"]["id"] for it in items[:9]]
    assert {r.url.path for r in seen} == {"/api/daily_papers"}


def test_fetch_uses_the_configured_date() -> None:
    seen: list[httpx.Request] = []
    with _paging_client([_items()[:3]], seen) as client:
        papers = fetch_daily_papers(HfDailySource(date="2026-06-11"), client=client, now=NOW)
    assert len(papers) == 3
    assert seen[0].url.params["date"] == "2026-06-11"
    assert "week" not in seen[0].url.params


def test_fetch_stops_when_the_server_ignores_paging() -> None:
    full = _items()[:5]
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=full)  # the same full page whatever `p` says

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        papers = fetch_daily_papers(HfDailySource(week="2026-W24", limit=5), client=client)
    assert len(papers) == 5
    assert len(seen) == 2


def test_fetch_reports_an_api_error_with_its_url() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "Invalid week"})

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(SourceError, match=r"daily_papers\?week=2026-W99.*HTTP 400.*Invalid week"),
    ):
        fetch_daily_papers(HfDailySource(week="2026-W99"), client=client)
