"""The orchestrator: sources → papers → topics → issue → render → delivery, in that order.

Each stage gets its own section of the configuration and hands the next a typed value: papers,
an `Issue`, the rendered variants, a `DeliveryReport`. `run`, `send`, the scheduler and the
preview all plan the issue through `plan_issue`, so what a preview shows is what a run sends.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience import SubscriberFile, audience, read_subscribers
from newsletter.audience.tokens import SecretKeys
from newsletter.delivery import (
    DeliveryReport,
    Enqueued,
    RetryPolicy,
    Selection,
    Transport,
    deliver,
    enqueue,
    make_transport,
)
from newsletter.errors import NotFoundError
from newsletter.models import Issue, Paper, RenderedEmail, Subscriber
from newsletter.preflight import preflight
from newsletter.render import render_issue
from newsletter.sources import load_papers, read_sources
from newsletter.store import Store, issue_lock, send_lock
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
    archived = store.archive.get_issue(wanted) if store is not None else None
    if archived is not None:
        return archived.issue, True
    found = load()
    sent_before = store.archive.sent_paper_ids(exclude_issue=wanted) if store is not None else set()
    history = store.archive.archived_papers(exclude_issue=wanted) if store is not None else []
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
    is rendered and its audience written into the ledger before it is archived: a run that fails
    on the way leaves the archive, the ledger and the papers sent before as they were. On a
    SQLite state another send makes this one refuse at once, or, with `wait_for_send` (the
    scheduler), wait for it to end (until `stop` is set). On PostgreSQL, runs on any number of
    hosts share the work: one builds and archives the issue while the others wait for it, then
    all of them send a share.
    """
    keys = preflight(config, papers=papers or (), subscribers=subscribers)
    waiting = (stop or threading.Event()) if wait_for_send else None
    with (
        send_lock(config.state_settings(), wait=waiting),
        Store.from_settings(config.state_settings()) as store,
        _heap_settled(),
    ):
        listed = _subscriber_file(config, subscribers)
        moment = now or default_now()
        wanted = issue_id or issue_id_for(moment, config.timezone)
        enqueued: Enqueued | None = None
        with issue_lock(store, wanted):  # one builder per issue across hosts (PostgreSQL)
            issue, reused = _plan(config, store, papers, wanted, moment)
            if issue.paper_count == 0 and not config.send_empty:
                log.warning("issue %s has no papers: nothing to send (send_empty is off)", issue.id)
                return RunResult(issue, reused, 0, None, empty=True)
            variants = Variants(issue, config)
            if dry_run:
                count = sum(1 for _ in audience(listed, store))
                return RunResult(issue, reused, count, None, _problems(listed), _outbox(config))
            if not reused:
                # the whole issue rendered before it is archived: a paper that cannot be rendered
                # stops the run with nothing written (any topic selection is a part of it)
                variants[None]
                enqueued = _enqueue(config, store, issue, listed, new_issue=True)
                if issue.paper_count:
                    store.archive.save_issue(issue, record_papers=True)
        if enqueued is None:
            enqueued = _enqueue(config, store, issue, listed)
        return _deliver(
            config, store, issue, reused, enqueued, listed, keys, variants, progress, stop
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
    with (
        send_lock(config.state_settings()),
        Store.from_settings(config.state_settings()) as store,
        _heap_settled(),
    ):
        archived = store.archive.get_issue(issue_id)
        if archived is None:
            known = ", ".join(s.id for s in store.archive.list_issues()[:5]) or "none yet"
            raise NotFoundError(
                f"issue {issue_id} is not in the archive (latest: {known}); "
                "build it with `newsletter run`"
            )
        listed = _subscriber_file(config, subscribers)
        issue = archived.issue
        enqueued = _enqueue(config, store, issue, listed)
        variants = Variants(issue, config)
        return _deliver(
            config, store, issue, True, enqueued, listed, keys, variants, progress, stop
        )


@contextmanager
def _heap_settled() -> Iterator[None]:
    """Keep what start-up made (modules, the config, the state's engine) out of the cyclic
    garbage collector's passes while the run lasts.

    A send makes many short-lived objects, and each of the collector's full passes would walk
    that whole heap again (the collector's share of a 10,000-message run's CPU, sampled with
    Linux perf: 5.0% without this, 3.6% with it). `gc.freeze` leaves the heap out of the passes
    (objects are still freed as usual when nothing refers to them); it is handed back at the
    end, for a scheduler runs many sends in one process.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _subscriber_file(config: Config, subscribers: str | Path | None) -> SubscriberFile:
    """The subscribers file (or `--subscribers`), read as the audience is written."""
    path = Path(subscribers) if subscribers is not None else config.subscribers_path
    return read_subscribers(path, config.topic_names)


def _problems(listed: SubscriberFile) -> tuple[str, ...]:
    for problem in listed.problems:
        log.warning("%s (skipped)", problem)
    return tuple(listed.problems)


def _enqueue(
    config: Config, store: Store, issue: Issue, listed: SubscriberFile, *, new_issue: bool = False
) -> Enqueued:
    """Stream who gets the issue (the subscribers file and the state) into the ledger.

    For an issue not archived yet, a subscribers file that turns out broken half-way leaves no
    row behind: nobody was sent anything for it.
    """
    try:
        enqueued = enqueue(
            issue, audience(listed, store), store.ledger, send_empty=config.send_empty
        )
    except BaseException:
        if new_issue:
            store.ledger.forget(issue.id)
        raise
    if not enqueued.audience:
        log.warning(
            "nobody to send to: %s lists no one and no one subscribed on the web", listed.path
        )
    return enqueued


class Variants(Mapping[Selection, RenderedEmail]):
    """The issue rendered once per topic selection (a variant), each when first asked for."""

    def __init__(
        self,
        issue: Issue,
        config: Config,
        rendered: Mapping[Selection, RenderedEmail] | None = None,
    ) -> None:
        self._issue, self._settings = issue, config.render_settings()
        self._rendered: dict[Selection, RenderedEmail] = dict(rendered or {})
        self._lock = threading.Lock()

    def __getitem__(self, sel: Selection) -> RenderedEmail:
        with self._lock:
            if sel not in self._rendered:
                topics = None if sel is None else frozenset(sel)
                self._rendered[sel] = render_issue(self._issue, self._settings, topics=topics)
            return self._rendered[sel]

    def __iter__(self) -> Iterator[Selection]:
        return iter(list(self._rendered))

    def __len__(self) -> int:
        return len(self._rendered)


def send_rendered(
    issue: Issue,
    config: Config,
    people: Iterable[Subscriber],
    store: Store,
    transport: Transport,
    *,
    keys: SecretKeys | None = None,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    variants: Mapping[Selection, RenderedEmail] | None = None,
) -> DeliveryReport:
    """Write the audience into the ledger and deliver, rendering what it needs: the send stage.

    `variants` may hold selections rendered already (the rest are rendered when first needed).
    """
    mail = config.mail_settings()
    enqueued = enqueue(issue, people, store.ledger, send_empty=mail.send_empty)
    return deliver(
        issue,
        Variants(issue, config, variants),
        store,
        transport,
        mail,
        enqueued=enqueued,
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
    enqueued: Enqueued,
    listed: SubscriberFile,
    keys: SecretKeys,
    variants: Variants,
    progress: Progress | None,
    stop: threading.Event | None,
) -> RunResult:
    problems = _problems(listed)
    report = deliver(
        issue,
        variants,
        store,
        make_transport(config.transport_settings()),
        config.mail_settings(),
        enqueued=enqueued,
        keys=keys,
        progress=progress,
        stop=stop,
    )
    return RunResult(issue, reused, enqueued.audience, report, problems, _outbox(config))


def is_fully_sent(config: Config, issue_id: str) -> bool:
    """True when the issue is archived, went to someone, and has nothing left to send."""
    with Store.from_settings(config.state_settings()) as store:
        if store.archive.get_issue(issue_id) is None:
            return False
        counts = store.ledger.counts(issue_id)
        # an empty ledger means the issue never reached anyone (no audience at the time)
        return counts.get("pending", 0) == 0 and sum(counts.values()) > 0
