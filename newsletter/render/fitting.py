"""Keep an email within its size budget: shorten summaries first, then cap sections.

Gmail clips messages over about 100 KB, hiding the footer with the unsubscribe link. Rendering is
the only exact measure, so the plan is estimated from one or two renders and then verified; an
issue that fits (the usual case) costs a single render.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from newsletter.models import Section, fill_caps
from newsletter.render.context import SUMMARY_FLOOR, PaperView, Plan, paper_views, summary_bytes

if TYPE_CHECKING:
    from newsletter.config.stages import RenderSettings

log = logging.getLogger(__name__)

# Room for each placeholder to grow into a real per-subscriber URL without breaking the budget.
PLACEHOLDER_ROOM = 200
PLACEHOLDERS_IN_HTML = 4  # unsubscribe and preferences, each maybe linked twice by a template
_MAX_TRIES = 4  # renders per fitting phase; the estimates are close, so one usually suffices


@dataclass
class Pass:
    """One full render of a plan: the final HTML, its size and the time each stage took."""

    plan: Plan
    html: str
    size: int
    seconds: dict[str, float] = field(default_factory=dict)


Attempt = Callable[[Plan], Pass]


def budget_bytes(config: RenderSettings) -> int:
    """Return the HTML size limit: `size_budget_kb` kilobytes less room for filled-in links."""
    return config.size_budget_kb * 1000 - PLACEHOLDERS_IN_HTML * PLACEHOLDER_ROOM


def fit(attempt: Attempt, sections: Sequence[Section], config: RenderSettings) -> Pass:
    """Return the first plan whose HTML fits the budget: full, shorter summaries, then capped."""
    budget = budget_bytes(config)
    caps = tuple(len(s.papers) for s in sections)
    full = attempt(Plan(config.summary_chars, caps))
    if full.size <= budget or not any(caps):
        if full.size > budget:
            log.warning("issue HTML is %.1f KB, over the budget, with no papers", full.size / 1000)
        return full
    views = [paper_views(s.papers) for s in sections]
    floor = min(SUMMARY_FLOOR, config.summary_chars)
    # Summary text is most of the difference between two summary lengths: predict, then verify.
    full_summaries = summary_bytes(views, caps, config.summary_chars)
    target = budget
    for _ in range(_MAX_TRIES):
        room = target - (full.size - full_summaries)
        if summary_bytes(views, caps, floor) > room:
            break
        lo, hi = floor, config.summary_chars
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if summary_bytes(views, caps, mid) <= room:
                lo = mid
            else:
                hi = mid - 1
        tried = attempt(Plan(lo, caps))
        if tried.size <= budget:
            return tried
        target -= tried.size - budget + 200
    return _fit_caps(attempt, full, views, caps, floor, budget)


def _fit_caps(
    attempt: Attempt,
    full: Pass,
    views: list[list[PaperView]],
    caps: tuple[int, ...],
    floor: int,
    budget: int,
) -> Pass:
    """Cap sections at the floor summary length, estimating each paper's bytes, then verify."""
    empty = attempt(Plan(floor, tuple(0 for _ in caps)))
    if empty.size > budget:
        log.warning("issue HTML is %.1f KB without any paper; over the budget", empty.size / 1000)
        return empty
    # Markup, title and links per paper, averaged over the full pass; the summary is exact.
    full_summaries = summary_bytes(views, caps, full.plan.summary_chars)
    overhead = (full.size - empty.size - full_summaries) / max(sum(caps), 1)
    costs = [[overhead + v.summary_size(floor) for v in vs] for vs in views]
    room = budget - empty.size
    for _ in range(_MAX_TRIES):
        new_caps = _caps_within(costs, caps, room)
        tried = attempt(Plan(floor, new_caps))
        if tried.size <= budget:
            return tried
        room -= tried.size - budget + int(overhead)
    log.warning("issue HTML did not fit after %d tries; sending only the links", _MAX_TRIES)
    return empty


def _caps_within(costs: list[list[float]], caps: tuple[int, ...], room: float) -> tuple[int, ...]:
    """Return the largest fair caps (see `models.fill_caps`) whose estimated bytes fit `room`."""

    def cost(c: Sequence[int]) -> float:
        return sum(sum(row[:n]) for row, n in zip(costs, c, strict=True))

    lo, hi = 0, sum(caps)
    while lo < hi:  # the most papers whose fair share fits
        mid = (lo + hi + 1) // 2
        if cost(fill_caps(caps, mid)) <= room:
            lo = mid
        else:
            hi = mid - 1
    return tuple(fill_caps(caps, lo))
