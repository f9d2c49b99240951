"""Build the weekly issue: pick the window's papers, group them by topic, rank and cap sections."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from newsletter.models import OTHER, Issue, Paper, Section, fill_caps
from newsletter.topics.engine import assign_all, compile_topics

if TYPE_CHECKING:
    from newsletter.config.stages import IssueSettings

log = logging.getLogger(__name__)

_OLDEST = datetime.min.replace(tzinfo=timezone.utc)


def default_now() -> datetime:
    """Return `SOURCE_DATE_EPOCH` as an aware datetime when set (reproducible builds), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch:
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc)
        except (ValueError, OverflowError, OSError):
            log.warning("SOURCE_DATE_EPOCH=%r is not a Unix time; using the clock", epoch)
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    # A naive time is taken as UTC: sources store UTC, and guessing the local zone is not portable.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def issue_id_for(now: datetime, tz: str) -> str:
    """Return the ISO week of `now` in timezone `tz`, like `2026-W48`."""
    year, week, _ = _aware(now).astimezone(ZoneInfo(tz)).isocalendar()
    return f"{year}-W{week:02d}"


def rank_key(paper: Paper, score: float = 0.0, position: int = 0) -> tuple[object, ...]:
    """Sort key: upvotes high to low (unknown last), then topic score high to low, then newest,
    then the order the source listed them in. Never the title: ties must not read alphabetical."""
    upvotes = paper.upvotes
    published = _aware(paper.published) if paper.published else _OLDEST
    return (
        upvotes is None,
        -(upvotes or 0),
        -score,
        paper.published is None,
        -published.timestamp() if paper.published else 0.0,
        position,
        paper.id,
    )


def select_papers(
    papers: Iterable[Paper],
    *,
    start: datetime | None,
    end: datetime | None,
    exclude_ids: frozenset[str] | set[str] = frozenset(),
) -> list[Paper]:
    """Keep the papers dated in (start, end] (undated ones too), unsent, first of each id."""
    kept: dict[str, Paper] = {}
    skipped_sent = skipped_window = 0
    for paper in papers:
        if paper.id in exclude_ids:
            skipped_sent += 1
            continue
        if paper.published is not None and start is not None and end is not None:
            # (start, end]: a paper on the boundary belongs to the earlier issue, never to both.
            when = _aware(paper.published)
            if not start < when <= end:
                skipped_window += 1
                continue
        kept.setdefault(paper.id, paper)
    log.debug(
        "issue papers: %d kept, %d already sent, %d outside the window",
        len(kept),
        skipped_sent,
        skipped_window,
    )
    return list(kept.values())


def make_sections(
    groups: Mapping[str, Sequence[Paper]],
    *,
    max_per_topic: int | None = None,
    max_papers: int | None = None,
    scores: Mapping[tuple[str, str], float] | None = None,
) -> tuple[Section, ...]:
    """Rank each topic's papers (see `rank_key`) and split them into shown and web-only by the
    caps. `scores` maps (topic, paper id) to the topic score that put the paper there."""
    scores = scores or {}
    names = [name for name, papers in groups.items() if papers and name != OTHER]
    if groups.get(OTHER):
        names.append(OTHER)  # "Other" is always the last section
    ranked: list[list[Paper]] = []
    for name in names:
        order = {p.id: i for i, p in reversed(list(enumerate(groups[name])))}

        def key(p: Paper, topic: str = name, where: dict[str, int] = order) -> tuple[object, ...]:
            return rank_key(p, scores.get((topic, p.id), 0.0), where[p.id])

        ranked.append(sorted(groups[name], key=key))
    caps = fill_caps([len(r) for r in ranked], max_papers, max_per_topic)
    return tuple(
        Section(
            name,
            tuple(papers[:cap]),
            tuple(papers[cap:]),
            tuple(scores.get((name, p.id), 0.0) for p in papers),
        )
        for name, papers, cap in zip(names, ranked, caps, strict=True)
    )


def group_with_scores(
    papers: Sequence[Paper], config: IssueSettings, background: Iterable[Paper] = ()
) -> tuple[dict[str, list[Paper]], dict[tuple[str, str], float]]:
    """Group papers by topic (config order, Other last) with each paper's score in each topic.

    `background` (the archive's papers) joins the batch in the keyword weights' background.
    """
    matcher = compile_topics(config.topic_rules, config.grouping)
    matcher.observe(background)
    buckets: dict[str, list[Paper]] = {t.name: [] for t in matcher.topics}
    buckets[OTHER] = []
    scores: dict[tuple[str, str], float] = {}
    for paper, assignment in zip(papers, assign_all(papers, matcher), strict=True):
        by_topic = {s.topic: s.score for s in assignment.scores}
        for topic in assignment.topics:
            buckets[topic].append(paper)
            # Other has no score of its own; the closest topic's says how near it came.
            near = assignment.runner_up.score if assignment.runner_up else 0.0
            scores[topic, paper.id] = near if topic == OTHER else by_topic.get(topic, 0.0)
    return {name: found for name, found in buckets.items() if found}, scores


def count_papers(sections: Iterable[Section]) -> tuple[int, int]:
    """Return (distinct papers, distinct papers shown); a multi-topic paper counts once."""
    every: set[str] = set()
    shown: set[str] = set()
    for section in sections:
        every.update(p.id for p in section.all_papers)
        shown.update(p.id for p in section.papers)
    return len(every), len(shown)


def assemble_issue(
    groups: Mapping[str, Sequence[Paper]],
    config: IssueSettings,
    *,
    issue_id: str,
    start: datetime,
    end: datetime,
    scores: Mapping[tuple[str, str], float] | None = None,
) -> Issue:
    """Turn grouped papers into an `Issue` (ranked, capped, counted)."""
    sections = make_sections(
        groups,
        max_per_topic=config.max_per_topic,
        max_papers=config.max_papers,
        scores=scores,
    )
    total, shown = count_papers(sections)
    return Issue(
        id=issue_id,
        title=config.title,
        start=start,
        end=end,
        sections=sections,
        paper_count=total,
        email_count=shown,
        web_only_count=total - shown,
        web_url=f"{config.base_url}/issues/{issue_id}",
    )


def build_issue(
    papers: Iterable[Paper],
    config: IssueSettings,
    *,
    now: datetime | None = None,
    issue_id: str | None = None,
    use_window: bool = True,
    exclude_ids: frozenset[str] | set[str] = frozenset(),
    background: Iterable[Paper] = (),
) -> Issue:
    """Build the issue sent at `now` from the window's unsent papers, grouped by topic.

    `background` (the archive's papers) joins the batch in the keyword weights' background.
    """
    sent = _aware(now) if now is not None else default_now()
    start, end = sent - timedelta(days=config.window_days), sent
    chosen = select_papers(
        papers,
        start=start if use_window else None,
        end=end if use_window else None,
        exclude_ids=exclude_ids,
    )
    # The issue covers its papers' dates (the window only bounds them): the email's header, the
    # web page and the archive all say the same range, whatever topics a reader chose.
    dated = sorted(_aware(p.published) for p in chosen if p.published is not None)
    if dated:
        start, end = dated[0], dated[-1]
    groups, scores = group_with_scores(chosen, config, background)
    issue = assemble_issue(
        groups,
        config,
        issue_id=issue_id or issue_id_for(sent, config.timezone),
        start=start,
        end=end,
        scores=scores,
    )
    log.info(
        "issue %s: %d papers in %d sections (%d web-only)",
        issue.id,
        issue.paper_count,
        len(issue.sections),
        issue.web_only_count,
    )
    return issue
