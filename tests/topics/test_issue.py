from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from newsletter.config import parse_config
from newsletter.models import OTHER, Paper
from newsletter.topics.issue import (
    assemble_issue,
    build_issue,
    default_now,
    fill_caps,
    group_with_scores,
    issue_id_for,
    make_sections,
    select_papers,
)

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)  # a Thursday in ISO week 48

CONFIG = """
title: Test digest
base_url: https://digest.example.org/
topics:
  - name: Diffusion
    keywords: [diffusion model]
  - name: Reasoning
    keywords: [reasoning]
  - name: Agents
    keywords: [agent]
"""


def config(extra: str = ""):
    return parse_config(CONFIG + extra)


def paper(n: int, title: str = "", **kw: object) -> Paper:
    return Paper(id=f"2611.{n:05d}", title=title or f"Paper {n}", **kw)  # type: ignore[arg-type]


# -- issue ids ---------------------------------------------------------------------------------


def test_issue_id_is_the_iso_week_in_the_configured_timezone() -> None:
    sunday_night = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)
    assert issue_id_for(sunday_night, "UTC") == "2026-W48"
    # Already Monday morning in Tokyo: the next week.
    assert issue_id_for(sunday_night, "Asia/Tokyo") == "2026-W49"


def test_issue_id_uses_the_iso_year_at_new_year() -> None:
    # Fri 1 Jan 2027 belongs to the last ISO week of 2026 (Thursday 31 Dec decides).
    assert issue_id_for(datetime(2027, 1, 1, 12, tzinfo=timezone.utc), "UTC") == "2026-W53"
    assert issue_id_for(datetime(2027, 1, 4, 12, tzinfo=timezone.utc), "UTC") == "2027-W01"


def test_naive_now_is_taken_as_utc() -> None:
    assert issue_id_for(datetime(2026, 11, 29, 23, 30), "Asia/Tokyo") == "2026-W49"


def test_source_date_epoch_fixes_the_default_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1795737600")  # 2026-11-27 00:00 UTC
    assert default_now() == datetime(2026, 11, 27, tzinfo=timezone.utc)
    issue = build_issue([paper(1)], config())
    assert issue.id == "2026-W48"
    assert issue.end == datetime(2026, 11, 27, tzinfo=timezone.utc)


# -- which papers go in --------------------------------------------------------------------------


def test_window_keeps_the_last_seven_days_and_undated_papers() -> None:
    papers = [
        paper(1, published=NOW - timedelta(days=8)),  # too old
        paper(2, published=NOW - timedelta(days=6)),
        paper(3, published=NOW - timedelta(days=7)),  # on the boundary: the previous issue's
        paper(4, published=NOW),  # the send time itself is in
        paper(5, published=NOW + timedelta(hours=1)),  # after sending: next week's
        paper(6),  # undated
    ]
    issue = build_issue(papers, config(), now=NOW)
    assert sorted(p.id for p in issue.papers) == ["2611.00002", "2611.00004", "2611.00006"]
    # the issue says its papers' dates, not the window's: one range for every reader
    assert issue.start == NOW - timedelta(days=6) and issue.end == NOW
    undated = build_issue([paper(6)], config(), now=NOW)
    assert undated.start == NOW - timedelta(days=7) and undated.end == NOW


def test_window_days_comes_from_the_config() -> None:
    papers = [paper(1, published=NOW - timedelta(days=1)), paper(2, published=NOW - timedelta(3))]
    issue = build_issue(papers, config("window_days: 2\n"), now=NOW)
    assert [p.id for p in issue.papers] == ["2611.00001"]


def test_papers_sent_before_are_left_out() -> None:
    papers = [paper(1), paper(2), paper(3)]
    issue = build_issue(papers, config(), now=NOW, exclude_ids=frozenset({"2611.00002"}))
    assert sorted(p.id for p in issue.papers) == ["2611.00001", "2611.00003"]


def test_without_window_everything_given_goes_in_and_the_dates_are_the_papers() -> None:
    old, older = NOW - timedelta(days=40), NOW - timedelta(days=90)
    papers = [paper(1, published=old), paper(2, published=older), paper(3)]
    issue = build_issue(papers, config(), now=NOW, use_window=False, issue_id="special")
    assert issue.id == "special"
    assert issue.paper_count == 3
    assert (issue.start, issue.end) == (older, old)


def test_duplicate_ids_count_once() -> None:
    assert len(select_papers([paper(1), paper(1, "Again")], start=None, end=None)) == 1


# -- sections ------------------------------------------------------------------------------------


def test_sections_follow_topic_order_with_other_last_and_empty_topics_left_out() -> None:
    papers = [
        paper(1, "Nothing to see here"),
        paper(2, "Reasoning about programs"),
        paper(3, "A diffusion model for maps"),
    ]
    issue = build_issue(papers, config(), now=NOW)
    assert [s.topic for s in issue.sections] == ["Diffusion", "Reasoning", OTHER]
    assert [p.id for p in issue.sections[-1].papers] == ["2611.00001"]
    assert issue.title == "Test digest"
    assert issue.web_url == f"https://digest.example.org/issues/{issue.id}"


def test_papers_rank_by_upvotes_then_topic_score_then_date_never_by_title() -> None:
    day = timedelta(days=1)
    papers = [
        paper(1, "B unknown votes, newer", published=NOW - day),
        paper(2, "Few votes", upvotes=2, published=NOW - day),
        paper(3, "Many votes", upvotes=50, published=NOW - 3 * day),
        paper(4, "A unknown votes, older", published=NOW - 2 * day),
        paper(5, "Z same votes, newer", upvotes=2, published=NOW),
        paper(6, "A unknown votes, undated"),
        paper(7, "A same as 1, listed after it", published=NOW - day),
        paper(8, "Y same votes, better score", upvotes=2, published=NOW - 3 * day),
        paper(9, "X unknown votes, best score", published=NOW - 3 * day),
    ]
    scores = {("T", "2611.00008"): 5.0, ("T", "2611.00009"): 9.0}
    (section,) = make_sections({"T": papers}, scores=scores)
    assert [p.id.split(".")[1] for p in section.papers] == [
        "00003",  # 50 votes
        "00008",  # 2 votes, the best score of those
        "00005",  # 2 votes, newer
        "00002",  # 2 votes, older
        "00009",  # unknown votes, the best score
        "00001",  # unknown votes, no score, newest day, listed first
        "00007",  # same day, listed after it (not "A" before "B")
        "00004",  # older
        "00006",  # undated last
    ]
    score = dict(zip((p.id for p in section.all_papers), section.scores, strict=False))
    assert score["2611.00009"] == 9.0 and score["2611.00001"] == 0.0


def test_sections_rank_the_sample_by_topic_score_without_upvotes() -> None:
    from newsletter import resources
    from newsletter.sources import read_source
    from newsletter.topics.engine import assign_all, compile_topics

    cfg = parse_config(resources.default_config_text() + "\nmax_per_topic: null\n")
    papers = read_source("sample")
    issue = build_issue(papers, cfg.issue_settings(), now=NOW, use_window=False)
    # grouped as one batch, as the issue groups them: the keywords' weights depend on the batch
    assigned = assign_all(papers, compile_topics(cfg.topic_rules, cfg.grouping))
    score_of = {p.id: a.score for p, a in zip(papers, assigned, strict=True)}
    for section in issue.sections:
        if section.topic == OTHER:
            continue
        scores = [score_of[p.id] for p in section.papers]
        if len(section.papers) > 1 and section.topic == issue.sections[0].topic:
            titles = [p.title for p in section.papers]
            assert titles != sorted(titles, key=str.casefold)  # not alphabetical
        assert scores == sorted(scores, reverse=True), section.topic
        assert list(section.scores[: len(section.papers)]) == scores


def test_max_per_topic_moves_the_rest_to_web_only() -> None:
    groups = {"A": [paper(i, upvotes=i) for i in range(1, 6)], "B": [paper(10)]}
    issue = assemble_issue(
        groups, config("max_per_topic: 2\n"), issue_id="2026-W48", start=NOW, end=NOW
    )
    a, b = issue.sections
    assert [p.upvotes for p in a.papers] == [5, 4]  # the best two stay in the email
    assert (a.total, a.more, len(a.more_papers)) == (5, 3, 3)
    assert (b.total, b.more) == (1, 0)
    assert (issue.paper_count, issue.email_count, issue.web_only_count) == (6, 3, 3)


def test_fill_caps_levels_sections_and_gives_the_extra_in_topic_order() -> None:
    # 6 slots over sections of 10, 1 and 5 papers: level 2 uses 5, the spare one goes first.
    assert fill_caps([10, 1, 5], 6) == [3, 1, 2]
    assert fill_caps([10, 1, 5], 100) == [10, 1, 5]
    assert fill_caps([10, 1, 5], 0) == [0, 0, 0]
    assert fill_caps([10, 1, 5], 6, per_topic=2) == [2, 1, 2]
    assert fill_caps([], 5) == []


def test_max_papers_caps_the_email_fairly() -> None:
    groups = {
        "A": [paper(i) for i in range(10)],
        "B": [paper(20)],
        "C": [paper(30 + i) for i in range(5)],
    }
    issue = assemble_issue(groups, config("max_papers: 6\n"), issue_id="x", start=NOW, end=NOW)
    assert [len(s.papers) for s in issue.sections] == [3, 1, 2]
    assert issue.web_only_count == 10


def test_a_paper_in_two_topics_counts_once() -> None:
    shared = paper(1, upvotes=3)
    groups = {"A": [shared, paper(2)], "B": [shared]}
    issue = assemble_issue(groups, config(), issue_id="x", start=NOW, end=NOW)
    assert issue.paper_count == 2
    assert [s.total for s in issue.sections] == [2, 1]


def test_issue_is_frozen() -> None:
    issue = build_issue([paper(1)], config(), now=NOW)
    with pytest.raises(AttributeError):
        issue.id = "other"  # type: ignore[misc]


def test_grouping_keeps_topic_order_omits_empty_topics_and_puts_other_last() -> None:
    rules = (
        "topics:\n"
        "  - {name: A, keywords: [agent]}\n"
        "  - {name: B, keywords: [robot]}\n"
        "  - {name: Empty, keywords: [quasar]}\n"
        "grouping: {multi_topic: true, secondary_ratio: 0.1}\n"
    )
    papers = [
        paper(1, "Stars"),
        paper(2, "A robot"),
        paper(3, "An agent and a robot"),
    ]
    grouped, _ = group_with_scores(papers, parse_config(rules).issue_settings())
    assert list(grouped) == ["A", "B", OTHER]
    assert [p.title for p in grouped["A"]] == ["An agent and a robot"]
    assert [p.title for p in grouped["B"]] == ["A robot", "An agent and a robot"]
    assert [p.title for p in grouped[OTHER]] == ["Stars"]
