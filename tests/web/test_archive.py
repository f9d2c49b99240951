"""The public pages: home, the issue archive, the web version of an issue, the Atom feed."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import lxml.html  # type: ignore[import-untyped]
import pytest

from newsletter.models import Paper
from tests.support.web import T0, Site, make_site, sample_issue


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, "max_per_topic: 2\n")


def test_home_shows_the_newsletter_the_form_and_the_latest_issues(site: Site) -> None:
    site.store.archive.save_issue(sample_issue(site.config))
    page = site.client.get("/")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Papers &amp; Co</h1>" in text
    assert "The week&#39;s papers, &lt;grouped&gt; by topic." in text
    assert '<label for="email">Email address</label>' in text
    assert re.search(r'<label for="name">Name', text)
    for topic in ("Diffusion", "Agents", "Robotics"):
        assert f'<input type="checkbox" name="topics" value="{topic}">' in text
    assert "checked" not in text  # no box ticked: every topic, the default
    assert "all topics" in text.lower()
    assert 'href="/issues/2026-W48"' in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


# -- archive and feed ---------------------------------------------------------------------------


def test_the_issue_page_lists_every_paper_including_capped_ones(site: Site) -> None:
    issue = sample_issue(site.config)
    assert issue.web_only_count > 0  # the config caps sections, so some papers are web-only
    site.store.archive.save_issue(issue)
    page = site.client.get("/issues/2026-W48")
    assert page.status_code == 200
    total = sum(s.total for s in issue.sections)
    assert page.text.count('<li class="paper">') == total
    visible = html.unescape(page.text)
    for p in issue.papers:
        assert p.title in visible
    capped = sum(s.more for s in issue.sections)
    assert page.text.count("Web only: not in the email") == capped
    assert "Robot manipulation &lt;with&gt; &amp; tricky &#34;characters&#34;" in page.text


def test_the_archive_lists_issues_and_an_unknown_one_is_a_404_page(site: Site) -> None:
    site.store.archive.save_issue(sample_issue(site.config, "2026-W47"))
    site.store.archive.save_issue(sample_issue(site.config, "2026-W48"))
    page = site.client.get("/issues")
    assert page.status_code == 200
    assert 'href="/issues/2026-W47"' in page.text and 'href="/issues/2026-W48"' in page.text
    missing = site.client.get("/issues/2020-W01")
    assert missing.status_code == 404 and "Issue not found" in missing.text
    assert site.client.get("/no/such/page").status_code == 404


def _cards(doc: Any, card: str, title: str) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Title -> (title link, [(label, url)] of the links line) of every paper card."""
    out = {}
    for block in doc.find_class(card):
        head = block.find_class(title)[0] if title else block.find("h3")
        anchor = head if head.tag == "a" else head.find("a")
        links = [(a.text_content(), a.get("href")) for a in block.find_class("links")[0].iter("a")]
        out[" ".join(head.text_content().split())] = (anchor.get("href"), links)
    return out


def test_the_issue_page_links_every_paper_as_the_email_does(site: Site) -> None:
    from newsletter.render import render_issue
    from newsletter.topics.issue import build_issue

    no_link = Paper(id="title:abc", title="A diffusion model paper from a page without links")
    issue = build_issue(
        [*sample_issue(site.config).papers, no_link],
        site.config.issue_settings(),
        now=T0,
        use_window=False,
    )
    site.store.archive.save_issue(issue)
    web = lxml.html.fromstring(site.client.get("/issues/2026-W48").text)
    email = lxml.html.fromstring(render_issue(issue, site.config.render_settings()).html)
    on_web = _cards(web, "paper", "")
    in_email = _cards(email, "paper", "title")
    assert len(on_web) == issue.paper_count > len(in_email) > 0
    for title, entry in in_email.items():
        assert on_web[title] == entry  # the same title link and the same labelled links
    search = "https://arxiv.org/search/?query=A+diffusion+model+paper+from+a+page+without+links"
    assert on_web[no_link.title] == (f"{search}&searchtype=title", [("Search arXiv", ANY)])
    # Every "+N more" and chip of the email lands on that topic's section of the page.
    ids = {el.get("id") for el in web.iter("section")}
    targets = [a.get("href") for a in email.iter("a") if "#" in (a.get("href") or "")]
    assert targets and all(t.split("#")[1] in ids for t in targets)
    assert all(t.startswith("http://news.test/issues/2026-W48#") for t in targets)


def test_the_archive_links_each_issue_by_its_dates_and_paper_count(site: Site) -> None:
    site.store.archive.save_issue(sample_issue(site.config, "2026-W47"))
    site.clock.advance(days=7)
    later = sample_issue(site.config, "2026-W48")
    site.store.archive.save_issue(later)
    doc = lxml.html.fromstring(site.client.get("/issues").text)
    texts = [a.text_content() for a in doc.find_class("issues")[0].iter("a")]
    # both built from the same papers by hand: the issue id tells them apart
    assert texts == ["21 Nov 2026 · 10 papers (2026-W48)", "21 Nov 2026 · 10 papers (2026-W47)"]
    page = lxml.html.fromstring(site.client.get("/issues/2026-W48").text)
    assert "21 Nov 2026 · 10 papers" in page.find_class("meta")[0].text_content()
    assert "21 Nov 2026 – 21 Nov 2026" not in site.client.get("/issues").text


def test_the_feed_is_atom_that_feedparser_reads_without_errors(site: Site) -> None:
    import feedparser

    site.store.archive.save_issue(sample_issue(site.config, "2026-W47"))
    site.clock.advance(days=7)
    site.store.archive.save_issue(sample_issue(site.config, "2026-W48"))
    answer = site.client.get("/feed.xml")
    assert answer.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(answer.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Papers & Co"
    links = {e.link for e in parsed.entries}
    assert links == {"http://news.test/issues/2026-W47", "http://news.test/issues/2026-W48"}
    content = parsed.entries[0].content[0].value
    assert "Robot manipulation &lt;with&gt;" in content
