"""The orchestrator: sources → papers → topics → issue → render → delivery, in that order.

Each stage gets its own section of the configuration and hands the next a typed value: papers,
an `Issue`, the rendered variants, a `DeliveryReport`. `run`, `send`, the scheduler and the
preview all plan the issue through `plan_issue`, so what a preview shows is what a run sends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience import audience, load_subscribers
from newsletter.audience.tokens import SecretKeys
from newsletter.delivery import (
    Batch,
    DeliveryReport,
    RetryPolicy,
    Selection,
    Transport,
    deliver,
    enqueue,
    make_transport,
    selections_of,
)
from newsletter.errors import NotFoundError
from newsletter.models import Issue, Paper, RenderedEmail, Subscriber
from newsletter.preflight import preflight
from newsletter.render import render_issue
from newsletter.sources import load_papers, read_sources
from newsletter.store import Store, send_lock
from newsletter.topics import build_issue, default_now, issue_id_for

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def gather_papers(config: Config, papers: Sequence[str] | None) -> list[Paper]:
    """Read `--papers` sources when given, else the sources named in the config."""
    if papers:
        return read_sources(papers)
    return load_papers(config.source_specs, window_days=config.window_days)


@dataclass(frozen=True)
class RunResult:
    issue: Issue
    reused: bool  # the issue came from the archive (a resumed or repeated run)
    audience: int
    report: DeliveryReport | None  # None for a dry run
    subscriber_problems: tuple[str, ...] = ()
    outbox: Path | None = None  # where the messages went, for the outbox transport
    empty: bool = False  # the issue had no papers, so nothing was sent

    @property
    def ok(self) -> bool:
        r = self.report
        return r is None or (not r.stopped_early and r.failed == 0 and r.pending == 0)

    def summary(self) -> str:
        """The one line of counts every run ends with."""
        head = (
            f"issue {self.issue.id}: {self.issue.paper_count} papers, {self.audience} subscribers"
        )
        if self.empty:
            return f"{head}; no papers, nothing sent"
        if self.report is None:
            return f"{head}; dry run, nothing sent"
        return f"{head}; {self.report.summary()}"


def plan_issue(
    config: Config,
    store: Store | None,
    load: Callable[[], list[Paper]],
    *,
    issue_id: str | None = None,
    now: datetime | None = None,
    use_window: bool = True,
) -> tuple[Issue, bool]:
    """The issue a send would carry now: this week's from the archive, or a new one built from
    `load()` without the papers earlier issues carried. Changes nothing."""
    moment = now or default_now()
    wanted = issue_id or issue_id_for(moment, config.timezone)
    archived = store.get_issue(wanted) if store is not None else None
    if archived is not None:
        return archived.issue, True
    found = load()
    sent_before = store.sent_paper_ids(exclude_issue=wanted) if store is not None else set()
    history = store.archived_papers(exclude_issue=wanted) if store is not None else []
    issue = build_issue(
        found,
        config.issue_settings(),
        now=moment,
        issue_id=wanted,
        use_window=use_window,
        exclude_ids=frozenset(sent_before),
        background=history,
    )
    left_out = sum(1 for p in found if p.id in sent_before)
    if left_out:
        log.info("%d papers were in earlier issues and are left out", left_out)
    return issue, False


def existing_store(config: Config) -> Store | None:
    """The state store if it exists yet (a preview must not create one)."""
    state = str(config.state)
    if "://" not in state and not config.resolve(state).exists():
        return None
    return Store.from_config(config)


def prepare_issue(
    config: Config,
    store: Store,
    papers: Sequence[str] | None = None,
    *,
    issue_id: str | None = None,
    now: datetime | None = None,
    save: bool = True,
) -> tuple[Issue, bool]:
    """Reuse this week's issue from the archive, or build, archive and record a new one."""
    issue, reused = _plan(config, store, papers, issue_id, now)
    if save and not reused and issue.paper_count:
        store.save_issue(issue, record_papers=True)
    return issue, reused


def _plan(
    config: Config,
    store: Store,
    papers: Sequence[str] | None,
    issue_id: str | None,
    now: datetime | None,
) -> tuple[Issue, bool]:
    issue, reused = plan_issue(
        config,
        store,
        lambda: gather_papers(config, papers),
        issue_id=issue_id,
        now=now,
        use_window=not papers,
    )
    if reused:
        ignored = " (--papers ignored: give --issue-id for a new issue)" if papers else ""
        log.warning("issue %s is in the archive: resuming it%s", issue.id, ignored)
    return issue, reused


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
    wait_for_send: bool = False,
) -> RunResult:
    """Build (or resume) this week's issue and deliver it to everyone not yet sent it.

    Everything that can be checked is checked first (`newsletter.preflight`), and a new issue
    is rendered before it is archived: a run that fails on the way leaves the archive, the
    ledger and the papers sent before as they were. Another send on the same state makes this
    one refuse at once, or, with `wait_for_send` (the scheduler), wait for it to end (until
    `stop` is set).
    """
    keys = preflight(config, papers=papers or (), subscribers=subscribers)
    waiting = (stop or threading.Event()) if wait_for_send else None
    with send_lock(config, wait=waiting), Store.from_config(config) as store:
        # the audience first: a broken subscribers file must fail before anything is archived
        people, problems = _audience(config, store, subscribers)
        issue, reused = _plan(config, store, papers, issue_id, now)
        if issue.paper_count == 0 and not config.send_empty:
            log.warning("issue %s has no papers: nothing to send (send_empty is off)", issue.id)
            return RunResult(issue, reused, 0, None, empty=True)
        if dry_run:
            return RunResult(issue, reused, len(people), None, problems, _outbox(config))
        variants: dict[Selection, RenderedEmail] = {}
        if not reused:
            # rendered before the issue is archived: a paper that cannot be rendered stops the
            # run with nothing written, not with an archived issue that nobody got
            needed = selections_of(issue, people, send_empty=config.send_empty)
            variants = render_variants(issue, config, needed)
            if issue.paper_count:
                store.save_issue(issue, record_papers=True)
        return _deliver(
            config, store, issue, reused, people, problems, keys, progress, stop, variants
        )


def send_issue(
    config: Config,
    issue_id: str,
    *,
    subscribers: str | Path | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> RunResult:
    """Resume the delivery of an archived issue."""
    keys = preflight(config, subscribers=subscribers)
    with send_lock(config), Store.from_config(config) as store:
        archived = store.get_issue(issue_id)
        if archived is None:
            known = ", ".join(s.id for s in store.list_issues()[:5]) or "none yet"
            raise NotFoundError(
                f"issue {issue_id} is not in the archive (latest: {known}); "
                "build it with `newsletter run`"
            )
        people, problems = _audience(config, store, subscribers)
        issue = archived.issue
        return _deliver(config, store, issue, True, people, problems, keys, progress, stop)


def _audience(
    config: Config, store: Store, subscribers: str | Path | None
) -> tuple[list[Subscriber], tuple[str, ...]]:
    """Who gets the issue: the subscribers file (or `--subscribers`) and the state."""
    path = Path(subscribers) if subscribers is not None else config.subscribers_path
    listed = load_subscribers(path, config.topic_names)
    for problem in listed.problems:
        log.warning("%s (skipped)", problem)
    people = audience(listed.subscribers, store)
    if not people:
        log.warning("nobody to send to: %s lists no one and no one subscribed on the web", path)
    return people, tuple(listed.problems)


def render_variants(
    issue: Issue, config: Config, selections: Sequence[Selection]
) -> dict[Selection, RenderedEmail]:
    """Render the issue once per topic selection (a variant), never once per subscriber."""
    settings = config.render_settings()
    return {
        sel: render_issue(issue, settings, topics=None if sel is None else frozenset(sel))
        for sel in selections
    }


def send_rendered(
    issue: Issue,
    config: Config,
    people: Sequence[Subscriber],
    store: Store,
    transport: Transport,
    *,
    keys: SecretKeys | None = None,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    variants: Mapping[Selection, RenderedEmail] | None = None,
) -> DeliveryReport:
    """Write the audience into the ledger, render what it needs, and deliver: the send stage.

    `variants` may hold selections rendered already (the rest are rendered here).
    """
    mail = config.mail_settings()
    batch: Batch = enqueue(issue, people, store.ledger, send_empty=mail.send_empty)
    ready = dict(variants or {})
    missing = [sel for sel in batch.selections if sel not in ready]
    ready.update(render_variants(issue, config, missing))
    return deliver(
        issue,
        batch,
        ready,
        store,
        transport,
        mail,
        keys=keys,
        retry=retry,
        progress=progress,
        stop=stop,
    )


def _outbox(config: Config) -> Path | None:
    transport = config.transport_settings()
    return transport.outbox if config.delivery.transport == "outbox" else None


def _deliver(
    config: Config,
    store: Store,
    issue: Issue,
    reused: bool,
    people: list[Subscriber],
    problems: tuple[str, ...],
    keys: SecretKeys,
    progress: Progress | None,
    stop: threading.Event | None,
    variants: Mapping[Selection, RenderedEmail] | None = None,
) -> RunResult:
    report = send_rendered(
        issue,
        config,
        people,
        store,
        make_transport(config.transport_settings()),
        keys=keys,
        progress=progress,
        stop=stop,
        variants=variants,
    )
    return RunResult(issue, reused, len(people), report, problems, _outbox(config))


def is_fully_sent(config: Config, issue_id: str) -> bool:
    """True when the issue is archived, went to someone, and has nothing left to send."""
    with Store.from_config(config) as store:
        if store.get_issue(issue_id) is None:
            return False
        counts = store.ledger.counts(issue_id)
        # an empty ledger means the issue never reached anyone (no audience at the time)
        return counts.get("pending", 0) == 0 and sum(counts.values()) > 0
