from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import feedparser

from newsletter.store.schema import ArchivedIssue
from newsletter.web.feed import atom_feed
from newsletter.web.pages import template_environment
from tests.support.web import T0, make_site, sample_issue


def test_an_empty_archive_is_still_a_valid_feed(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    body = atom_feed(site.config, [], template_environment(site.config), now=T0)
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    assert parsed.entries == []
    assert parsed.feed.updated == "2026-11-23T09:00:00Z"


def test_entries_carry_id_link_dates_and_every_paper(tmp_path: Path) -> None:
    site = make_site(tmp_path, "max_per_topic: 1\n")
    issue = sample_issue(site.config)
    later = T0 + timedelta(days=1)
    body = atom_feed(
        site.config,
        [ArchivedIssue(issue, "", later)],
        template_environment(site.config),
        now=T0,
    )
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0
    [entry] = parsed.entries
    assert entry.id == entry.link == "http://news.test/issues/2026-W48"
    assert entry.title == "Papers & Co (2026-W48)"
    assert entry.updated == "2026-11-24T09:00:00Z"
    assert parsed.feed.updated == entry.updated
    content = entry.content[0].value
    for paper in issue.papers:  # capped papers too: the feed is the web version
        assert paper.url in content
    assert entry.summary.startswith(f"{issue.paper_count} papers: Diffusion (5)")
