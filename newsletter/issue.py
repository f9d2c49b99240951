"""Build the weekly issue: pick the window's papers, group them by topic, rank and cap sections."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from newsletter.models import OTHER, Issue, Paper, Section

if TYPE_CHECKING:
    from newsletter.config import Config

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


def rank_key(paper: Paper) -> tuple[object, ...]:
    """Sort key: upvotes high to low (unknown last), then newest first, then title, then id."""
    upvotes = paper.upvotes
    published = _aware(paper.published) if paper.published else _OLDEST
    return (
        upvotes is None,
        -(upvotes or 0),
        paper.published is None,
        -published.timestamp() if paper.published else 0.0,
        paper.title.casefold(),
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


def fill_caps(sizes: Sequence[int], total: int | None, per_topic: int | None = None) -> list[int]:
    """Share `total` shown papers across sections fairly: level caps, the extra in topic order.

    Every section gets the same cap where it has enough papers (a big topic cannot crowd out the
    small ones); what a cap leaves over goes one by one to the first sections.
    """
    wants = [min(n, per_topic) if per_topic is not None else n for n in sizes]
    if total is None or sum(wants) <= total:
        return wants
    lo, hi = 0, max(wants, default=0)
    while lo < hi:  # the highest level whose sum still fits
        mid = (lo + hi + 1) // 2
        if sum(min(w, mid) for w in wants) <= total:
            lo = mid
        else:
            hi = mid - 1
    caps = [min(w, lo) for w in wants]
    left = total - sum(caps)
    for i, want in enumerate(wants):
        if left <= 0:
            break
        if want > caps[i]:
            caps[i] += 1
            left -= 1
    return caps


def make_sections(
    groups: Mapping[str, Sequence[Paper]],
    *,
    max_per_topic: int | None = None,
    max_papers: int | None = None,
) -> tuple[Section, ...]:
    """Rank each topic's papers and split them into shown and web-only by the caps."""
    names = [name for name, papers in groups.items() if papers and name != OTHER]
    if groups.get(OTHER):
        names.append(OTHER)  # "Other" is always the last section
    ranked = [sorted(groups[name], key=rank_key) for name in names]
    caps = fill_caps([len(r) for r in ranked], max_papers, max_per_topic)
    return tuple(
        Section(name, tuple(papers[:cap]), tuple(papers[cap:]))
        for name, papers, cap in zip(names, ranked, caps, strict=True)
    )


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
    config: Config,
    *,
    issue_id: str,
    start: datetime,
    end: datetime,
) -> Issue:
    """Turn grouped papers into an `Issue` (ranked, capped, counted)."""
    sections = make_sections(
        groups, max_per_topic=config.max_per_topic, max_papers=config.max_papers
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
    config: Config,
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
    from newsletter.grouping import compile_topics, group

    sent = _aware(now) if now is not None else default_now()
    start, end = sent - timedelta(days=config.window_days), sent
    chosen = select_papers(
        papers,
        start=start if use_window else None,
        end=end if use_window else None,
        exclude_ids=exclude_ids,
    )
    if not use_window:
        # Papers given by hand cover their own dates; the header should say which.
        dated = sorted(_aware(p.published) for p in chosen if p.published is not None)
        if dated:
            start, end = dated[0], dated[-1]
    matcher = compile_topics(config.topic_rules, config.grouping)
    matcher.observe(background)
    issue = assemble_issue(
        group(chosen, matcher),
        config,
        issue_id=issue_id or issue_id_for(sent, config.timezone),
        start=start,
        end=end,
    )
    log.info(
        "issue %s: %d papers in %d sections (%d web-only)",
        issue.id,
        issue.paper_count,
        len(issue.sections),
        issue.web_only_count,
    )
    return issue
