"""What the templates see: an issue's sections turned into plain values for one render plan."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus, urlsplit
from zoneinfo import ZoneInfo

from newsletter.models import OTHER, Issue, Paper, Section
from newsletter.render.blurbs import author_line
from newsletter.render.contribution import summarize

if TYPE_CHECKING:
    from newsletter.config.stages import RenderSettings

# The size budget never lowers a summary's room below this. Summaries are whole sentences
# (`render.contribution`): less room means fewer sentences, and the first is always whole.
SUMMARY_FLOOR = 225
# After the preheader: invisible characters that fill the inbox's preview line, so clients do
# not pull in the body's first words after it (zero-width non-joiner and no-break space pairs).
PREHEADER_SPACER = "&#847;&zwnj;&nbsp;" * 60
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Plan:
    """How much of each section to show: summary length and papers per section (in order)."""

    summary_chars: int
    caps: tuple[int, ...]


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class PaperView:
    """One paper as the templates show it; the summary is filled in per plan."""

    paper: Paper
    title: str
    url: str  # where the title links: the abstract page, else an arXiv title search
    byline: str  # "A, B, C et al. · 42 upvotes"
    links: tuple[Link, ...]

    def summary(self, limit: int) -> str:
        return _summary(self.paper, limit)

    def summary_size(self, limit: int) -> int:
        """Bytes the summary takes in the HTML (escaped, UTF-8)."""
        return len(escape(self.summary(limit), quote=False).encode("utf-8"))


@functools.lru_cache(maxsize=16384)
def _summary(paper: Paper, limit: int) -> str:
    return summarize(paper, limit)


def arxiv_search(title: str) -> str:
    """An arXiv title search: where a paper without a link of its own can be found."""
    return f"https://arxiv.org/search/?query={quote_plus(title)}&searchtype=title"


def _http(url: str | None) -> str | None:
    # Sources keep only http(s) links (`sources.normalize`); a paper archived by an older version
    # may still hold another kind, and no `javascript:` link may reach an email.
    return url if url and urlsplit(url).scheme.lower() in ("http", "https") else None


@functools.lru_cache(maxsize=16384)
def paper_view(paper: Paper) -> PaperView:
    """Return the fixed parts of a paper's entry (title link, byline, links)."""
    url, pdf_url = _http(paper.url), _http(paper.pdf_url)
    links = [
        Link(label, link)
        for label, link in (
            ("Abstract", url),
            ("PDF", pdf_url),
            ("Code", _http(paper.code_url)),
            ("Project", _http(paper.project_url)),
        )
        if link
    ]
    if not links:  # a paper from a page without links is still one click from its abstract
        links = [Link("Search arXiv", arxiv_search(paper.title))]
    byline = author_line(paper.authors)
    if paper.upvotes:  # "0 upvotes" says nothing worth the space
        votes = f"{paper.upvotes:,} upvote{'' if paper.upvotes == 1 else 's'}"
        byline = f"{byline} · {votes}" if byline else votes
    return PaperView(paper, paper.title, url or pdf_url or links[0].url, byline, tuple(links))


def paper_views(papers: Sequence[Paper]) -> list[PaperView]:
    return [paper_view(p) for p in papers]


def summary_bytes(views: Sequence[Sequence[PaperView]], caps: Sequence[int], limit: int) -> int:
    """Return the summary bytes of the papers shown under `caps` at summary length `limit`."""
    return sum(v.summary_size(limit) for vs, cap in zip(views, caps, strict=True) for v in vs[:cap])


def slug(name: str, taken: set[str]) -> str:
    base = _SLUG.sub("-", name.casefold()).strip("-") or "topic"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    taken.add(candidate)
    return candidate


def topic_anchors(sections: Sequence[Section]) -> dict[str, str]:
    """Each topic's anchor on the issue's web page (`#llm-reasoning`); computed from the whole
    issue's sections, so that every variant of the email links the same place."""
    taken: set[str] = set()
    return {s.topic: slug(s.topic, taken) for s in sections}


def paper_dates(issue: Issue) -> tuple[datetime, datetime]:
    """The first and last date of the issue's papers (every section, whatever a variant shows,
    so every reader sees one range); the issue's window when none is dated."""
    dated = [p.published for s in issue.sections for p in s.all_papers if p.published is not None]
    if not dated:
        return issue.start, issue.end
    return min(dated), max(dated)


def date_range(start: datetime, end: datetime, tz: str) -> str:
    """Return "21–28 Nov 2026", "28 Oct – 4 Nov 2026" or "28 Apr 2026" in timezone `tz`."""
    zone = ZoneInfo(tz)
    a = start.astimezone(zone).date() if start.tzinfo else start.date()
    b = end.astimezone(zone).date() if end.tzinfo else end.date()
    # Month names are spelled here: strftime's %b follows the process locale.
    if a == b:
        return f"{b.day} {_MONTHS[b.month - 1]} {b.year}"
    if (a.year, a.month) == (b.year, b.month):
        return f"{a.day}–{b.day} {_MONTHS[b.month - 1]} {b.year}"
    if a.year == b.year:
        return f"{a.day} {_MONTHS[a.month - 1]} – {b.day} {_MONTHS[b.month - 1]} {b.year}"
    return f"{a.day} {_MONTHS[a.month - 1]} {a.year} – {b.day} {_MONTHS[b.month - 1]} {b.year}"


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _top_topics(sections: Sequence[Section], n: int) -> list[Section]:
    """The `n` biggest named topics (by papers, then email order); "Other" only when alone."""
    named = [s for s in sections if s.topic != OTHER] or list(sections)
    order = {s.topic: i for i, s in enumerate(named)}
    return sorted(named, key=lambda s: (-s.total, order[s.topic]))[:n]


def subject_line(
    config: RenderSettings, issue: Issue, sections: Sequence[Section], total: int
) -> str:
    """Return the subject from `config.subject`: "Papers of the week: 83 papers, A, B and more"."""
    if total == 0:
        return f"{config.title}: no new papers"
    top = [s.topic for s in _top_topics(sections, 2)]
    more = len(sections) > len(top)
    topics = ", ".join(top) + " and more" if more else " and ".join(top)
    return config.subject.format(
        title=config.title,
        papers=plural(total, "paper"),
        count=total,
        topics=topics,
        issue_id=issue.id,
    )


def preheader(sections: Sequence[Section], total: int) -> str:
    """Return the inbox preview line: paper count and the biggest topics with their counts."""
    if total == 0:
        return "No new papers in your topics this week."
    top = _top_topics(sections, 3)
    listed = ", ".join(f"{s.topic} ({s.total})" for s in top)
    more = " and more" if len(sections) > len(top) else ""
    return f"{plural(total, 'paper')} this week: {listed}{more}."


def top_papers(sections: Sequence[Section], n: int) -> list[tuple[Paper, Section]]:
    """The "Top of the week": the `n` best papers among those the sections show, each with its
    section: the most upvoted where any upvotes are known, else the highest topic scores (section
    order on ties); a paper listed under two topics counts once."""
    seen: set[str] = set()
    candidates: list[tuple[tuple[object, ...], Paper, Section]] = []
    for si, section in enumerate(sections):
        for pi, paper in enumerate(section.papers):
            if paper.id in seen:
                continue
            seen.add(paper.id)
            score = section.scores[pi] if pi < len(section.scores) else 0.0  # papers come first
            key = (-(paper.upvotes or 0), -score, si, pi)
            candidates.append((key, paper, section))
    if any(p.upvotes for _, p, _ in candidates):
        candidates = [c for c in candidates if c[1].upvotes]  # unvoted papers are no highlight
    candidates.sort(key=lambda c: c[0])
    return [(paper, section) for _, paper, section in candidates[:n]]


def _paper(view: PaperView, limit: int, topic: str = "") -> dict[str, Any]:
    return {
        "id": view.paper.id,
        "title": view.title,
        "url": view.url,
        "byline": view.byline,
        "summary": view.summary(limit),
        "links": view.links,
        "topic": topic,
    }


def build_context(
    issue: Issue,
    sections: Sequence[Section],
    config: RenderSettings,
    plan: Plan,
    links: dict[str, str],
) -> dict[str, Any]:
    """Return the template context for `sections` of `issue` rendered under `plan`.

    Order and caps: the "Top of the week" block first (the best of the papers the caps show),
    then each section's other shown papers, then "+N more in <topic>" linking that topic on the
    issue's web page, which lists every paper.
    """
    web_url = issue.web_url or f"{config.base_url}/issues/{issue.id}"
    anchors = topic_anchors(issue.sections)
    capped = [
        Section(s.topic, s.all_papers[:cap], s.all_papers[cap:], s.scores)
        for s, cap in zip(sections, plan.caps, strict=True)
    ]
    shown = {p.id for s in capped for p in s.papers}
    top = top_papers(capped, config.top_papers) if len(shown) > 2 * config.top_papers else []
    in_top = {p.id for p, _ in top}
    views = []
    for section in capped:
        anchor = anchors.get(section.topic) or slug(section.topic, set(anchors.values()))
        url = f"{web_url}#{anchor}"
        views.append(
            {
                "topic": section.topic,
                "anchor": anchor,
                "url": url,
                "total": section.total,
                "more": section.more,
                "more_url": url,
                "in_top": sum(p.id in in_top for p in section.papers),
                "papers": [
                    _paper(paper_view(p), plan.summary_chars)
                    for p in section.papers
                    if p.id not in in_top
                ],
            }
        )
    every = {p.id for s in capped for p in s.all_papers}
    total = len(every)
    counts = {"total": total, "shown": len(shown), "web_only": total - len(shown)}
    first, last = paper_dates(issue)
    return {
        "lang": config.lang,
        "title": config.title,
        "description": config.description,
        "organisation": config.organisation,
        "postal_address": config.postal_address,
        "brand": {"accent": config.brand.accent, "logo_url": config.brand.logo_url},
        "base_url": config.base_url,
        "issue": {"id": issue.id, "title": issue.title},
        "dates": date_range(first, last, config.timezone),
        "subject": subject_line(config, issue, sections, total),
        "preheader": preheader(sections, total),
        "preheader_spacer": PREHEADER_SPACER,
        "top": [_paper(paper_view(p), plan.summary_chars, s.topic) for p, s in top],
        "sections": views,
        "counts": counts,
        "web_url": web_url,
        "unsubscribe_url": links["unsubscribe"],
        "preferences_url": links["preferences"],
    }


def sample_issue(config: RenderSettings) -> Issue:
    """Return a two-section issue with awkward text, to try templates on (`newsletter check`)."""
    now = datetime(2026, 1, 5, 8, tzinfo=timezone.utc)
    tricky = Paper(
        id="2601.00001",
        title="A <b>bold</b> & “quoted” title",
        authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
        abstract="An abstract with a long URL https://example.org/" + "x" * 120 + ". " * 1,
        url="https://arxiv.org/abs/2601.00001",
        pdf_url="https://arxiv.org/pdf/2601.00001",
        code_url="https://github.com/example/code",
        published=now - timedelta(days=1),
        upvotes=7,
    )
    plain = Paper(id="title:abc", title="An undated paper without links", abstract="Short.")
    first = config.topic_names[0] if config.topic_names else "Topic"
    sections = (Section(first, (tricky, plain)), Section(OTHER, (plain,)))
    return Issue(
        id="2026-W02",
        title=config.title,
        start=now - timedelta(days=config.window_days),
        end=now,
        sections=sections,
        paper_count=2,
        email_count=2,
        web_only_count=0,
        web_url=f"{config.base_url}/issues/2026-W02",
    )
