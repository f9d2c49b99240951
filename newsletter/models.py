"""The typed values that flow between stages. All frozen: a stage never mutates its input."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, normalised: the same shape whatever source it came from.

    `id` is the arXiv id without version where there is one, else `title:<hash>` of the
    normalised title (see `newsletter.sources.normalize.paper_id`).
    """

    id: str
    title: str
    authors: tuple[str, ...] = ()
    abstract: str = ""
    url: str | None = None  # the abstract / landing page
    pdf_url: str | None = None
    code_url: str | None = None
    project_url: str | None = None
    published: datetime | None = None  # timezone-aware (UTC) where known
    upvotes: int | None = None
    source: str = ""  # "hf_page", "hf_api", "arxiv_api", "arxiv_feed", "file"
    summary: str | None = None  # a short summary (the HF `ai_summary`) when the source has one
    categories: tuple[str, ...] = ()
    announce_type: str | None = None  # arXiv listing feeds: new, cross, replace, replace-cross
    keywords: tuple[str, ...] = ()  # the source's key phrases (the HF `ai_keywords`)

    @property
    def arxiv_id(self) -> str | None:
        return None if self.id.startswith("title:") else self.id

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (datetimes as ISO 8601, tuples as lists): JSON and archive."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Paper:
        """Rebuild a paper from `to_dict` output, ignoring fields `Paper` no longer has (an
        archive written by an older version stays readable)."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        published = values.get("published")
        if isinstance(published, str):
            values["published"] = datetime.fromisoformat(published)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Topic:
    """A keyword rule from `config.yaml`, in email order."""

    name: str
    keywords: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """One keyword of a topic that matched a paper, where and how often."""

    keyword: str
    field: Literal["title", "abstract", "keywords", "learned"]  # learned: see `topics.learn`
    count: int
    weight: float = 1.0  # the keyword's specificity (see `topics.specificity`)
    gain: float = 0.0  # what this hit adds to the topic's score, before the topic's breadth


@dataclass(frozen=True, slots=True)
class TopicScore:
    topic: str
    score: float
    hits: tuple[Hit, ...] = ()
    excluded_by: str | None = None  # the exclude keyword that ruled this topic out
    missing_require: bool = False  # a `require` list was given and none of it appeared
    breadth: float = 1.0  # the hits' sum was divided by this (a topic of common words scores less)
    evidence: float = 0.0  # the hits' damped counts before weights, which `min_score` asks of


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where a paper goes and why: its primary topic, any extra topics, and the evidence."""

    paper_id: str
    topic: str  # the primary topic, or OTHER
    topics: tuple[str, ...]  # primary first; more than one only in multi-topic mode
    score: float
    hits: tuple[Hit, ...] = ()
    runner_up: TopicScore | None = None
    scores: tuple[TopicScore, ...] = field(default=(), compare=False)  # every topic that scored


OTHER = "Other"


@dataclass(frozen=True, slots=True)
class Labelled:
    """A paper with the topic a reader expects it under (or OTHER): `topics eval` and `suggest`."""

    paper: Paper
    topic: str


@dataclass(frozen=True, slots=True)
class Section:
    """One topic of an issue: the papers the email shows, ranked, and the rest (web only)."""

    topic: str
    papers: tuple[Paper, ...]  # shown in the email, best first
    more_papers: tuple[Paper, ...] = ()  # left out of the email by a cap; on the web version
    # each paper's topic score (papers, then more_papers); empty for an issue archived without
    scores: tuple[float, ...] = ()

    @property
    def total(self) -> int:
        return len(self.papers) + len(self.more_papers)

    @property
    def more(self) -> int:
        return len(self.more_papers)

    @property
    def all_papers(self) -> tuple[Paper, ...]:
        return self.papers + self.more_papers


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


@dataclass(frozen=True, slots=True)
class Issue:
    """One weekly issue: its id (`2026-W48`), date range and sections in topic order."""

    id: str
    title: str
    start: datetime  # the papers' window (timezone-aware)
    end: datetime  # the send time
    sections: tuple[Section, ...]
    paper_count: int  # distinct papers in the issue
    email_count: int  # distinct papers the email shows
    web_only_count: int  # distinct papers only on the web version
    web_url: str = ""  # `{base_url}/issues/{id}`

    @property
    def papers(self) -> tuple[Paper, ...]:
        """Every distinct paper of the issue, in section order."""
        seen: dict[str, Paper] = {}
        for section in self.sections:
            for paper in section.all_papers:
                seen.setdefault(paper.id, paper)
        return tuple(seen.values())


# Where a subscriber's own links go in a rendered variant: render writes these, delivery fills
# them per subscriber (a variant is rendered once, never once per subscriber).
UNSUBSCRIBE_PLACEHOLDER = "%%UNSUBSCRIBE_URL%%"
PREFERENCES_PLACEHOLDER = "%%PREFERENCES_URL%%"


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """One rendered variant: subject, final HTML and its plain-text twin.

    `html` and `text` still hold `UNSUBSCRIBE_PLACEHOLDER` and `PREFERENCES_PLACEHOLDER`;
    delivery fills them per subscriber.
    """

    subject: str
    html: str
    text: str
    preheader: str
    size_bytes: int  # len(html.encode()), with the placeholders unfilled
    web_only: int  # papers of this variant's topics that only the web version shows
    papers_shown: int = 0  # distinct papers the email shows
    topics: tuple[str, ...] = ()  # the sections this variant holds, in email order


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One recipient: from the hand-written file, the web form, or an import.

    `email` is validated and normalised, and lower-cased as a whole: it is the identity the state
    store, the ledger and the suppression list match on (see `newsletter.audience.subscribers`).
    """

    email: str
    name: str | None = None
    topics: frozenset[str] | None = None  # topic names from the config; None means every topic
    format: Literal["html", "text"] = "html"
    source: Literal["file", "web", "cli"] = "file"
