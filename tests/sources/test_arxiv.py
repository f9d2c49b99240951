from __future__ import annotations

import re
from datetime import datetime, timezone

import httpx
import pytest

from newsletter.config import ArxivSource
from newsletter.errors import SourceError
from newsletter.sources.arxiv import (
    RateLimiter,
    fetch_arxiv,
    fetch_query,
    keep_announced,
    listing_url,
    parse_feed,
)
from tests.support.paths import SAMPLES


def _read(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


class FakeTime:
    """A clock that only moves when something sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def limiter(fake_time: FakeTime) -> RateLimiter:
    return RateLimiter(3.0, clock=fake_time.clock, sleep=fake_time.sleep)


# -- the API's Atom --------------------------------------------------------------------------


def test_api_sample_gives_100_papers() -> None:
    data = _read("arxiv-api-query.xml")
    papers = parse_feed(data, "arxiv-api-query.xml")
    assert len(papers) == data.count(b"<entry>") == 100
    raw_ids = re.findall(rb"<id>http://arxiv\.org/abs/([^<]+?)v\d+</id>", data)
    assert [p.id for p in papers] == [i.decode() for i in raw_ids]
    first = papers[0]
    assert first.id == "2202.12139"
    assert first.title.startswith("Testing Deep Learning Models: A First Comparative Study")
    assert first.authors == ("Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker")
    assert first.abstract.startswith("Deep Learning (DL) has revolutionized")
    assert first.categories == ("cs.SE", "cs.LG")
    assert first.url == "https://arxiv.org/abs/2202.12139"
    assert first.pdf_url == "https://arxiv.org/pdf/2202.12139"
    assert first.published == datetime(2022, 2, 24, 15, 5, 19, tzinfo=timezone.utc)
    assert {p.source for p in papers} == {"arxiv_api"}
    assert {p.announce_type for p in papers} == {None}
    assert all("\n" not in p.title and "  " not in p.abstract for p in papers)


def test_api_error_feed_raises_with_arxivs_message() -> None:
    with pytest.raises(SourceError, match="arXiv API error: incorrect id format for abc") as info:
        parse_feed(_read("arxiv-api-error.xml"), "arxiv-api-error.xml")
    assert str(info.value).startswith("arxiv-api-error.xml: ")


def test_api_empty_result_is_zero_papers_not_an_error() -> None:
    assert parse_feed(_read("arxiv-api-empty.xml"), "arxiv-api-empty.xml") == []


def test_api_authors_are_taken_one_per_element_never_split() -> None:
    feed = b"""<feed xmlns="http://www.w3.org/2005/Atom"
      xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">
      <opensearch:totalResults>1</opensearch:totalResults>
      <entry><id>http://arxiv.org/abs/1602.03837v1</id>
      <title>Observation of Gravitational Waves</title>
      <summary>We observe.</summary>
      <author><name>The LIGO Scientific Collaboration and the Virgo Collaboration</name></author>
      </entry></feed>"""
    [paper] = parse_feed(feed)
    assert paper.authors == ("The LIGO Scientific Collaboration and the Virgo Collaboration",)
    assert (paper.id, paper.source) == ("1602.03837", "arxiv_api")


# -- listing feeds ------------------------------------------------------------------------------


def test_rss_listing_cuts_the_abstract_and_splits_the_creators() -> None:
    data = _read("arxiv-rss-cs.AI.xml")
    papers = parse_feed(data, "arxiv-rss-cs.AI.xml")
    assert len(papers) == data.count(b"<item>") == 3
    first = papers[0]
    assert first.id == "2604.21935"
    assert (
        first.title == "Math Takes Two: A test for emergent mathematical reasoning in communication"
    )
    assert first.authors == ("Michael Cooper", "Samuel Cooper")
    assert first.abstract.startswith("Although language models demonstrate remarkable proficiency")
    assert first.abstract.endswith("emergent numerical reasoning capabilities.")
    assert first.announce_type == "new"
    assert first.categories == ("cs.AI", "cs.LG")
    assert first.pdf_url == "https://arxiv.org/pdf/2604.21935"
    assert first.published == datetime(2026, 4, 27, 4, tzinfo=timezone.utc)
    assert {p.source for p in papers} == {"arxiv_feed"}
    creators = re.findall(rb"<dc:creator>([^<]*)</dc:creator>", data)
    assert [len(p.authors) for p in papers] == [c.count(b",") + 1 for c in creators]
    assert papers[1].authors[4] == "Aravind R. Krishnan"


def test_rss_announce_types_are_kept_and_filterable() -> None:
    data = _read("arxiv-rss-multi-announce-types.xml")
    papers = parse_feed(data)
    raw_types = re.findall(rb"<arxiv:announce_type>([^<]+)<", data)
    assert [p.announce_type for p in papers] == [t.decode() for t in raw_types]
    assert [p.announce_type for p in papers] == ["new", "new", "cross", "replace"]
    cross = papers[2]
    assert (cross.id, cross.categories) == ("2205.06398", ("stat.ME", "stat.AP", "stat.ML"))
    assert cross.authors == ("Pritam Dey", "Zhengwu Zhang", "David B. Dunson")
    assert [p.id for p in keep_announced(papers, ["new", "cross"])] == [
        "2609.26811",
        "2609.26820",
        "2205.06398",
    ]
    assert [p.announce_type for p in keep_announced(papers, ["replace"])] == ["replace"]


def test_atom_listing_feed_count_and_fields() -> None:
    data = _read("arxiv-atom-feed-cs.AI.xml")
    papers = parse_feed(data, "arxiv-atom-feed-cs.AI.xml")
    assert len(papers) == data.count(b"<entry>") == 86
    assert not any(p.abstract.startswith("arXiv:") for p in papers)
    assert all(p.announce_type in ("new", "cross", "replace", "replace-cross") for p in papers)
    creators = re.findall(rb"<dc:creator>([^<]*)</dc:creator>", data)
    assert papers[0].authors[0] == "Weizhen Li"
    assert len(papers[0].authors) == creators[0].count(b",") + 1 == 30
    assert papers[0].id == "2508.13167"


def test_abstracts_are_plain_text_not_sanitised_html() -> None:
    feed = b"""<rss version="2.0"><channel><title>t</title><item><title>P &amp; Q</title>
    <link>https://arxiv.org/abs/2601.00001</link>
    <description>arXiv:2601.00001v1 Announce Type: new
Abstract: if a&lt;b and c&gt;d then &lt;script&gt; stays, R&amp;D too</description>
    <guid isPermaLink="false">oai:arXiv.org:2601.00001v1</guid>
    <dc:creator xmlns:dc="http://purl.org/dc/elements/1.1/">A. One and B. Two</dc:creator>
    </item></channel></rss>"""
    [paper] = parse_feed(feed)
    assert paper.title == "P & Q"
    assert paper.abstract == "if a<b and c>d then <script> stays, R&D too"
    assert paper.authors == ("A. One", "B. Two")
    assert paper.announce_type == "new"


@pytest.mark.parametrize(
    "data",
    [b"<?xml version='1.0'?><catalog><book/></catalog>", b"<rss><channel><title>x", b"not xml"],
)
def test_something_that_is_not_a_feed_is_an_error(data: bytes) -> None:
    with pytest.raises(SourceError, match=r"^bad\.xml: not (an RSS or Atom|a well-formed) feed"):
        parse_feed(data, "bad.xml")


# -- fetching -----------------------------------------------------------------------------------


def test_rate_limiter_spaces_calls_three_seconds_apart(fake_time: FakeTime) -> None:
    limiter = RateLimiter(3.0, clock=fake_time.clock, sleep=fake_time.sleep)
    limiter.wait()
    assert fake_time.sleeps == []
    fake_time.now += 1.0
    limiter.wait()
    assert fake_time.sleeps == [pytest.approx(2.0)]
    fake_time.now += 10.0
    limiter.wait()
    assert fake_time.sleeps == [pytest.approx(2.0)]


def test_listing_url_joins_categories() -> None:
    assert listing_url(["cs.CL", "cs.LG"]) == "https://rss.arxiv.org/rss/cs.CL+cs.LG"


def test_fetch_listing_requests_the_category_feed_and_filters(limiter: RateLimiter) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=_read("arxiv-rss-multi-announce-types.xml"))

    spec = ArxivSource(categories=["cs.LG", "stat.ML"], announce_types=["new"])
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        papers = fetch_arxiv(spec, client=client, limiter=limiter)
    assert seen == ["https://rss.arxiv.org/rss/cs.LG+stat.ML"]
    assert [p.announce_type for p in papers] == ["new", "new"]


def test_fetch_query_pages_and_keeps_the_pace(limiter: RateLimiter, fake_time: FakeTime) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        start = int(request.url.params["start"])
        name = "arxiv-api-query.xml" if start == 0 else "arxiv-api-empty.xml"
        return httpx.Response(200, content=_read(name))

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        papers = fetch_query("cat:cs.AI", max_results=150, client=client, limiter=limiter)
    assert len(papers) == 100
    assert [dict(r.url.params) for r in seen] == [
        {
            "search_query": "cat:cs.AI",
            "start": str(start),
            "max_results": str(size),
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        }
        for start, size in ((0, 100), (100, 50))
    ]
    assert seen[0].url.host == "export.arxiv.org"
    assert fake_time.sleeps == [pytest.approx(3.0)]


def test_fetch_query_reports_the_api_error_from_a_400(limiter: RateLimiter) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, content=_read("arxiv-api-error.xml"))

    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as client,
        pytest.raises(SourceError, match="arXiv API error: incorrect id format for abc"),
    ):
        fetch_query("id:abc", client=client, limiter=limiter)
