"""The section of the configuration each pipeline stage takes, with its paths resolved.

`config.yaml` keeps its keys where a person looks for them (most at the top level); a stage gets
only what it reads, as a frozen value made by `Config` (`config.issue_settings()`, ...). So a
stage can be called, and tested, without a whole configuration, and what it depends on is
written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.config.sections import (
        BrandConfig,
        DeliveryConfig,
        DkimConfig,
        GroupingConfig,
        SenderConfig,
    )
    from newsletter.models import Topic


@dataclass(frozen=True)
class IssueSettings:
    """What `topics.build_issue` reads: the rules, the window and the caps."""

    title: str
    timezone: str
    window_days: int
    base_url: str
    topic_rules: tuple[Topic, ...]
    grouping: GroupingConfig
    max_per_topic: int | None
    max_papers: int | None


@dataclass(frozen=True)
class RenderSettings:
    """What `render.render_issue` reads: the words around the papers, templates and budget."""

    title: str
    description: str
    lang: str
    timezone: str
    window_days: int
    base_url: str
    organisation: str
    postal_address: str | None  # the footer's postal line
    brand: BrandConfig  # accent colour and logo
    subject: str
    templates_dir: Path | None  # resolved; None: the bundled templates only
    size_budget_kb: int
    summary_chars: int
    top_papers: int  # papers in the "Top of the week" block; 0 leaves it out
    topic_names: tuple[str, ...]


@dataclass(frozen=True)
class MailSettings:
    """What delivery reads to build and send messages: sender, headers, links, DKIM, limits."""

    title: str
    base_url: str
    sender: SenderConfig
    list_id: str | None
    unsubscribe_mailto: str | None
    send_empty: bool
    max_consecutive_errors: int
    retry_minutes: float  # how long one run retries deferred messages
    max_attempts: int  # tries per subscriber and issue, across runs
    lease_seconds: float  # how long a claimed row stays a sender's without its heartbeat
    dkim: DkimConfig | None  # `key_path` resolved


@dataclass(frozen=True)
class TransportSettings:
    """Where messages go: the transport, the outbox folder (resolved) and the SMTP relay."""

    delivery: DeliveryConfig
    outbox: Path


@dataclass(frozen=True)
class StateSettings:
    """What the store reads: where the state is, and how to name a mistake in it."""

    state: str  # a SQLite file (relative to `base_dir`) or a database URL, as written
    base_dir: Path  # the config's folder
    config_name: str  # the config file's name, for messages ("config.yaml")
    configured: bool  # `state:` is set in the config (the default's folder may be made)

    def resolve(self, path: str | Path) -> Path:
        """A path written in the config, against the config's folder."""
        return resolve_path(self.base_dir, path)


def resolve_path(base_dir: Path, path: str | Path) -> Path:
    """A path written in a config file: `~` expanded, a relative one taken from `base_dir`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p
