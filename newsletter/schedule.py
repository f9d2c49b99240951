"""The weekly job on APScheduler 3.x: never missed within the grace, never doubled.

APScheduler's defaults are wrong for a weekly send: `misfire_grace_time` of 1 s silently skips a
run when the machine was asleep or restarting. We set a grace of hours, `coalesce=True` and
`max_instances=1`, catch up on start, and hold an OS lock so that one scheduler runs per config
folder. On a SQLite state that is one per state. On a PostgreSQL state every host runs its own:
they all fire, one builds the week's issue while the others wait for it, and all of them send a
share of it (`newsletter.job.run_weekly`); a host that is down leaves its share to the others.
A run that ends with rows still pending (deferred past its retry time, or stopped by the circuit
breaker) is run again for the same issue after `schedule.retry_after_minutes`, doubling each
time, as long as that comes before the next weekly fire: Postfix's deferred queue, for the run.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from newsletter.errors import NewsletterError
from newsletter.job import is_fully_sent, run_weekly
from newsletter.store import lock_path, scheduler_lock
from newsletter.topics import issue_id_for

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)

JOB_ID = "weekly-issue"
RETRY_ID = "retry-pending"
MAX_RETRY_DELAY = timedelta(days=1)


@dataclass(frozen=True)
class JobOutcome:
    """What one scheduled run did: its counts line, its issue and the rows it left pending."""

    line: str
    issue_id: str | None = None
    pending: int = 0


def retry_delay(config: Config, retries: int) -> timedelta:
    """How long after the `retries`-th retry (0: the run itself) a run with rows pending is
    run again: `schedule.retry_after_minutes`, doubling each time, at most a day."""
    minutes = config.schedule.retry_after_minutes * 2 ** min(retries, 20)
    return min(timedelta(minutes=minutes), MAX_RETRY_DELAY)


def plan_retry(
    config: Config, retries: int, now: datetime, next_fire: datetime | None
) -> datetime | None:
    """When to run a send with rows still pending again; None when the next fire comes first."""
    when = now + retry_delay(config, retries)
    if next_fire is not None and when >= next_fire:
        return None
    return when


def schedule_timezone(config: Config) -> ZoneInfo:
    return ZoneInfo(config.schedule.timezone or config.timezone)


def make_trigger(config: Config) -> BaseTrigger:
    """The trigger of the weekly job: the cron expression, or every N seconds for trials."""
    tz = schedule_timezone(config)
    if config.schedule.every_seconds:
        return IntervalTrigger(seconds=config.schedule.every_seconds, timezone=tz)

    class WallClockCronTrigger(CronTrigger):
        """A cron trigger that fires once for a wall-clock time that occurs twice.

        On a fall-back day (Europe/Berlin, last Sunday of October) 02:30 happens twice, and
        APScheduler's CronTrigger fires at both; a weekly digest must go out once.
        """

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime | None:
            nxt = _real(super().get_next_fire_time(previous_fire_time, now), tz)
            repeated = (
                nxt is not None
                and previous_fire_time is not None
                and _wall(nxt, tz) == _wall(previous_fire_time, tz)
            )
            if repeated and nxt is not None:
                # the repeated hour of a fall-back day: skip to the next occurrence
                after = nxt.astimezone(timezone.utc)
                nxt = _real(super().get_next_fire_time(after, after + timedelta(seconds=1)), tz)
            return nxt

    return WallClockCronTrigger.from_crontab(config.schedule.cron, timezone=tz)


def _real(moment: datetime | None, tz: ZoneInfo) -> datetime | None:
    """A valid local time for an instant (CronTrigger may hand out 02:30 on a spring-forward day,
    a wall time that does not exist; through UTC it becomes the real instant, 03:30)."""
    return None if moment is None else moment.astimezone(timezone.utc).astimezone(tz)


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(timezone.utc).astimezone(tz).replace(tzinfo=None)


def fire_times(trigger: BaseTrigger, now: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `now`."""
    times: list[datetime] = []
    previous: datetime | None = None
    current = now
    while len(times) < count:
        nxt = trigger.get_next_fire_time(previous, current)
        if nxt is None:
            break
        times.append(nxt)
        # step in UTC: local-time arithmetic across a DST change lands on the wrong instant
        previous = nxt.astimezone(timezone.utc)
        current = previous + timedelta(microseconds=1)
    return times


def last_fire_time(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The most recent fire time at or before `now` (looking back up to a year)."""
    for days in (8, 32, 367):
        times = [t for t in fire_times(trigger, now - timedelta(days=days), 800) if t <= now]
        if times:
            return times[-1]
    return None


@dataclass(frozen=True)
class CatchUp:
    action: Literal["run", "skip", "none"]
    fire_time: datetime | None
    issue_id: str | None
    message: str


def decide_catch_up(
    config: Config,
    trigger: BaseTrigger,
    now: datetime,
    is_fully_sent: Callable[[str], bool],
) -> CatchUp:
    """On start: run a send missed within the grace now; past it, say how to send by hand."""
    if config.schedule.every_seconds:
        return CatchUp("none", None, None, "interval schedule: nothing to catch up")
    fired = last_fire_time(trigger, now)
    if fired is None:
        return CatchUp("none", None, None, "no earlier fire time")
    tz = schedule_timezone(config)
    # the id `newsletter run` gives an issue sent at that moment (in the config's timezone)
    issue_id = issue_id_for(fired, config.timezone)
    if is_fully_sent(issue_id):
        return CatchUp("none", fired, issue_id, f"issue {issue_id} was already sent")
    late = now - fired
    when = fired.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
    if late <= timedelta(hours=config.schedule.misfire_grace_hours):
        return CatchUp("run", fired, issue_id, f"the run of {when} was missed; running it now")
    return CatchUp(
        "skip",
        fired,
        issue_id,
        f"the run of {when} was missed by {_hours(late)}, more than the grace of "
        f"{config.schedule.misfire_grace_hours:g} h: skipped; send it by hand with "
        f"`newsletter run` (or `newsletter send {issue_id}` to resume it)",
    )


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


def _delay(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


Job = Callable[[threading.Event, str | None], JobOutcome]


def run_scheduler(
    config: Config,
    job: Job,
    is_fully_sent: Callable[[str], bool],
    *,
    now: Callable[[], datetime] | None = None,
) -> None:
    """Run the weekly job until SIGINT/SIGTERM.

    `job(stop, issue_id)` sends this week's issue (or, for a retry, the issue named) and says
    what it did; a run that leaves rows pending is retried before the next fire.
    """
    tz = schedule_timezone(config)
    clock = now or (lambda: datetime.now(tz))
    trigger = make_trigger(config)
    grace = int(config.schedule.misfire_grace_hours * 3600) or 1
    stop = threading.Event()
    one_at_a_time = threading.Lock()

    def fire(issue_id: str | None = None, retries: int = 0) -> None:
        with one_at_a_time:
            if stop.is_set():
                return
            outcome = job(stop, issue_id)
            (log.error if outcome.line.startswith("failed: ") else log.info)(
                "run: %s", outcome.line
            )
            if outcome.pending and outcome.issue_id and not stop.is_set():
                retry_later(outcome, retries)

    def retry_later(outcome: JobOutcome, retries: int) -> None:
        now = clock()
        at = plan_retry(config, retries, now, weekly.next_run_time)
        if at is None:
            log.warning(
                "issue %s: %d still pending; the next run comes before another retry would: "
                "send them with `newsletter send %s`",
                outcome.issue_id,
                outcome.pending,
                outcome.issue_id,
            )
            return
        scheduler.add_job(
            fire,
            "date",
            run_date=at,
            args=(outcome.issue_id, retries + 1),
            id=RETRY_ID,
            name="retry of a run with rows pending",
            replace_existing=True,
        )
        log.info(
            "issue %s: %d still pending; retry %d at %s (in %s)",
            outcome.issue_id,
            outcome.pending,
            retries + 1,
            at.isoformat(timespec="seconds"),
            _delay(at - now),  # the planned wait, not what is left after add_job
        )

    with scheduler_lock(lock_path(config.state_settings(), "schedule")):
        scheduler = BlockingScheduler(
            timezone=tz,
            job_defaults={"misfire_grace_time": grace, "coalesce": True, "max_instances": 1},
        )
        weekly = scheduler.add_job(fire, trigger, id=JOB_ID, name="weekly issue")

        def after_run(event: object) -> None:
            code = getattr(event, "code", 0)
            if code == EVENT_JOB_MISSED:
                log.warning("a run was missed beyond the grace; send it by hand: newsletter run")
            if getattr(event, "job_id", "") == JOB_ID and weekly.next_run_time:
                log.info("next run: %s", weekly.next_run_time.isoformat())

        scheduler.add_listener(after_run, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)

        catch_up = decide_catch_up(config, trigger, clock(), is_fully_sent)
        if catch_up.action == "skip":
            log.warning("%s", catch_up.message)
        elif catch_up.action == "run":
            log.info("%s", catch_up.message)
            scheduler.add_job(fire, "date", run_date=clock(), id="catch-up", name="catch-up run")

        def on_signal(signum: int, frame: object) -> None:
            log.info(
                "%s: finishing the message in flight, then stopping", signal.Signals(signum).name
            )
            stop.set()
            # wait=False: a signal handler must not block; start() returns once the job ends
            scheduler.shutdown(wait=False)

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        first = fire_times(trigger, clock(), 1)
        log.info("scheduler started; next run: %s", first[0].isoformat() if first else "never")
        try:
            scheduler.start()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        # shutdown(wait=False) returned at once; let a send in progress finish its message
        with one_at_a_time:
            pass
        log.info("scheduler stopped")


def upcoming(config: Config, count: int, now: datetime | None = None) -> list[datetime]:
    """The next `count` fire times, in the schedule's timezone."""
    tz = schedule_timezone(config)
    return fire_times(make_trigger(config), now or datetime.now(tz), count)


def run_forever(config: Config) -> None:
    """`newsletter schedule`: the weekly `run`, on the configured schedule, until stopped."""

    def job(stop: threading.Event, issue_id: str | None) -> JobOutcome:
        try:
            result = run_weekly(config, stop=stop, wait_for_send=True, issue_id=issue_id)
        except NewsletterError as e:
            # one line, as the CLI would print it; the scheduler keeps going for next week
            return JobOutcome(f"failed: {e}")
        pending = result.report.pending if result.report is not None else 0
        return JobOutcome(result.summary(), result.issue.id, pending)

    run_scheduler(config, job, lambda issue_id: is_fully_sent(config, issue_id))
