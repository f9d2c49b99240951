"""The typed values that flow between stages. All frozen: a stage never mutates its input."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, normalised: the same shape whatever source it came from.

    `id` is the arXiv id without version where there is one, else `title:<hash>` of the
    normalised title (see `newsletter.papers.paper_id`).
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

    @property
    def arxiv_id(self) -> str | None:
        return None if self.id.startswith("title:") else self.id


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
    field: Literal["title", "abstract"]
    count: int


@dataclass(frozen=True, slots=True)
class TopicScore:
    topic: str
    score: float
    hits: tuple[Hit, ...] = ()
    excluded_by: str | None = None  # the exclude keyword that ruled this topic out
    missing_require: bool = False  # a `require` list was given and none of it appeared


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
