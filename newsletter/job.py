"""The orchestrator: sources → papers → issue → render → deliver. Preview, `run`, `send` and the
scheduler all come through here, so they cannot drift apart."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.delivery import DeliveryReport
    from newsletter.models import Issue, Paper, RenderedEmail
    from newsletter.store import Store

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def gather_papers(config: Config, papers: Sequence[str] | None) -> list[Paper]:
    """Read `--papers` sources when given, else the sources named in the config."""
    from newsletter.sources import load_papers, read_sources

    if papers:
        return read_sources(papers)
    return load_papers(config.source_specs, window_days=config.window_days)


def build_current_issue(
    config: Config,
    papers: Sequence[str] | None = None,
    *,
    issue_id: str | None = None,
    now: datetime | None = None,
) -> tuple[Issue, RenderedEmail]:
    """Build and render this week's issue (everything given with `--papers` goes in)."""
    from newsletter.issue import build_issue
    from newsletter.render import render_issue

    found = gather_papers(config, papers)
    issue = build_issue(found, config, now=now, issue_id=issue_id, use_window=not papers)
    rendered = render_issue(issue, config)
    log.info("issue %s: %d papers, %d sections", issue.id, issue.paper_count, len(issue.sections))
    return issue, rendered


@dataclass(frozen=True)
class RunResult:
    issue: Issue
    reused: bool  # the issue came from the archive (a resumed or repeated run)
    audience: int
    report: DeliveryReport | None  # None for a dry run
    subscriber_problems: tuple[str, ...] = ()
    outbox: Path | None = None  # where the messages went, for the outbox transport

    @property
    def ok(self) -> bool:
        r = self.report
        return r is None or (not r.stopped_early and r.failed == 0)

    def summary(self) -> str:
        """The one line of counts every run ends with."""
        head = (
            f"issue {self.issue.id}: {self.issue.paper_count} papers, {self.audience} subscribers"
        )
        if self.report is None:
            return f"{head}; dry run, nothing sent"
        return f"{head}; {self.report.summary()}"


def prepare_issue(
    config: Config,
    store: Store,
    papers: Sequence[str] | None = None,
    *,
    issue_id: str | None = None,
    now: datetime | None = None,
    save: bool = True,
) -> tuple[Issue, bool]:
    """Reuse this week's issue from the archive, or build it without the papers sent before."""
    from newsletter.issue import build_issue, default_now, issue_id_for

    moment = now or default_now()
    wanted = issue_id or issue_id_for(moment, config.timezone)
    archived = store.get_issue(wanted)
    if archived is not None:
        log.info("issue %s is in the archive: resuming it", wanted)
        return archived.issue, True
    found = gather_papers(config, papers)
    sent_before = store.sent_paper_ids(exclude_issue=wanted)
    issue = build_issue(
        found,
        config,
        now=moment,
        issue_id=wanted,
        use_window=not papers,
        exclude_ids=frozenset(sent_before),
    )
    left_out = sum(1 for p in found if p.id in sent_before)
    if left_out:
        log.info("%d papers were in earlier issues and are left out", left_out)
    if save:
        store.save_issue(issue)
        store.record_sent_papers(issue.id, (p.id for p in issue.papers))
    return issue, False


def run_weekly(
    config: Config,
    papers: Sequence[str] | None = None,
    *,
    subscribers: str | Path | None = None,
    issue_id: str | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Build (or resume) this week's issue and deliver it to everyone not yet sent it."""
    from newsletter.store import Store

    with Store.from_config(config) as store:
        issue, reused = prepare_issue(
            config, store, papers, issue_id=issue_id, now=now, save=not dry_run
        )
        return _deliver(config, store, issue, reused, subscribers, dry_run, progress, stop)


def send_issue(
    config: Config,
    issue_id: str,
    *,
    subscribers: str | Path | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Resume the delivery of an archived issue."""
    from newsletter.store import Store

    with Store.from_config(config) as store:
        archived = store.get_issue(issue_id)
        if archived is None:
            known = ", ".join(s.id for s in store.list_issues()[:5]) or "none yet"
            raise NewsletterError(
                f"issue {issue_id} is not in the archive (latest: {known}); "
                "build it with `newsletter run`"
            )
        return _deliver(config, store, archived.issue, True, subscribers, False, progress, stop)


def _deliver(
    config: Config,
    store: Store,
    issue: Issue,
    reused: bool,
    subscribers: str | Path | None,
    dry_run: bool,
    progress: Progress | None,
    stop: threading.Event | None,
) -> RunResult:
    from newsletter.delivery import deliver
    from newsletter.subscribers import audience, load_subscribers
    from newsletter.transports import make_transport

    path = config.resolve(subscribers or config.subscribers)
    listed = load_subscribers(path, [t.name for t in config.topics])
    for problem in listed.problems:
        log.warning("%s (skipped)", problem)
    people = audience(listed.subscribers, store)
    outbox = (
        config.resolve(config.delivery.outbox) if config.delivery.transport == "outbox" else None
    )
    if dry_run:
        return RunResult(issue, reused, len(people), None, tuple(listed.problems), outbox)
    report = deliver(
        issue, config, people, store, make_transport(config), progress=progress, stop=stop
    )
    return RunResult(issue, reused, len(people), report, tuple(listed.problems), outbox)


def is_fully_sent(config: Config, issue_id: str) -> bool:
    """True when the issue is archived and its ledger has nothing left to send."""
    from newsletter.store import Store

    with Store.from_config(config) as store:
        if store.get_issue(issue_id) is None:
            return False
        return store.ledger_counts(issue_id).get("pending", 0) == 0
