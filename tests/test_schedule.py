from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from newsletter.config import parse_config
from newsletter.errors import ConfigError, NewsletterError
from newsletter.schedule import (
    decide_catch_up,
    fire_times,
    last_fire_time,
    make_trigger,
    plan_retry,
    retry_delay,
)
from newsletter.sources import read_source
from newsletter.store.locks import scheduler_lock
from tests.support.paths import REPO, SAMPLES
from tests.support.smtp_server import SmtpServer

TOPICS = "topics: [{name: A, keywords: [x]}]\n"
UTC = ZoneInfo("UTC")


def config(schedule: str, tmp_path: Path | None = None):
    return parse_config(f"schedule: {schedule}\n{TOPICS}", base_dir=tmp_path)


def local(times: list[datetime], tz: str) -> list[str]:
    # through UTC, so that the printed wall time is the real one
    return [t.astimezone(UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z") for t in times]


def test_bad_cron_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        config("{cron: mon 8}")
    assert info.value.problems == [
        "config.yaml: schedule.cron: 'mon 8' is not a cron expression (five fields: minute hour"
        " day month weekday, like '0 8 * * mon') (line 1)"
    ]


def test_default_is_monday_8_in_the_config_timezone() -> None:
    c = parse_config(f"timezone: Europe/Berlin\n{TOPICS}")
    start = datetime(2026, 11, 26, 12, tzinfo=UTC)  # a Thursday
    times = fire_times(make_trigger(c), start, 3)
    assert local(times, "Europe/Berlin") == [
        "2026-11-30 08:00 +0100",
        "2026-12-07 08:00 +0100",
        "2026-12-14 08:00 +0100",
    ]


@pytest.mark.parametrize(
    ("tz", "start", "expected"),
    [
        # spring forward in Berlin: 02:00 -> 03:00 on 2026-03-29; 02:30 does not exist that day
        (
            "Europe/Berlin",
            datetime(2026, 3, 27, 12, tzinfo=UTC),
            ["2026-03-28 02:30 +0100", "2026-03-29 03:30 +0200", "2026-03-30 02:30 +0200"],
        ),
        # fall back in Berlin: 03:00 -> 02:00 on 2026-10-25; 02:30 happens twice, runs once
        (
            "Europe/Berlin",
            datetime(2026, 10, 23, 12, tzinfo=UTC),
            ["2026-10-24 02:30 +0200", "2026-10-25 02:30 +0200", "2026-10-26 02:30 +0100"],
        ),
        # New York: spring forward 2026-03-08; fall back 2026-11-01 repeats 01:00-02:00, not 02:30
        (
            "America/New_York",
            datetime(2026, 3, 6, 12, tzinfo=UTC),
            ["2026-03-07 02:30 -0500", "2026-03-08 03:30 -0400", "2026-03-09 02:30 -0400"],
        ),
        (
            "America/New_York",
            datetime(2026, 10, 30, 12, tzinfo=UTC),
            ["2026-10-31 02:30 -0400", "2026-11-01 02:30 -0500", "2026-11-02 02:30 -0500"],
        ),
    ],
)
def test_daily_0230_runs_once_a_day_across_dst(
    tz: str, start: datetime, expected: list[str]
) -> None:
    c = config(f"{{cron: '30 2 * * *', timezone: {tz}}}")
    times = fire_times(make_trigger(c), start, 3)
    assert local(times, tz) == expected
    # exactly one run per calendar day, never two, never zero
    days = [t.astimezone(ZoneInfo(tz)).date() for t in times]
    assert len(set(days)) == 3 and (days[2] - days[0]).days == 2


def test_weekly_send_across_dst_keeps_its_wall_time() -> None:
    c = config("{cron: '0 8 * * mon', timezone: America/New_York}")
    times = fire_times(make_trigger(c), datetime(2026, 10, 20, tzinfo=UTC), 3)
    assert local(times, "America/New_York") == [
        "2026-10-26 08:00 -0400",
        "2026-11-02 08:00 -0500",
        "2026-11-09 08:00 -0500",
    ]


def test_last_fire_time() -> None:
    c = config("{cron: '0 8 * * mon'}")
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert last_fire_time(make_trigger(c), now) == datetime(2026, 11, 23, 8, tzinfo=UTC)


def test_missed_run_inside_the_grace_runs_once() -> None:
    c = config("{cron: '0 8 * * mon', misfire_grace_hours: 6}")
    trigger = make_trigger(c)
    now = datetime(2026, 11, 23, 11, 30, tzinfo=UTC)  # 3.5 h late
    asked: list[str] = []

    def sent(issue_id: str) -> bool:
        asked.append(issue_id)
        return False

    decision = decide_catch_up(c, trigger, now, sent)
    assert decision.action == "run"
    assert decision.issue_id == "2026-W48" and asked == ["2026-W48"]
    assert "missed; running it now" in decision.message


def test_missed_run_past_the_grace_is_skipped_and_says_how_to_send() -> None:
    c = config("{cron: '0 8 * * mon', misfire_grace_hours: 6}")
    now = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)  # 12 h late
    decision = decide_catch_up(c, make_trigger(c), now, lambda _id: False)
    assert decision.action == "skip"
    assert "12.0 h" in decision.message and "newsletter send 2026-W48" in decision.message


def test_a_run_already_fully_sent_is_not_run_again() -> None:
    c = config("{cron: '0 8 * * mon'}")
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    decision = decide_catch_up(c, make_trigger(c), now, lambda issue_id: issue_id == "2026-W48")
    assert decision.action == "none" and "already sent" in decision.message


def test_second_scheduler_on_the_same_state_refuses(tmp_path: Path) -> None:
    lock = tmp_path / "newsletter.db.schedule.lock"
    with scheduler_lock(lock):
        # another process, as a second `newsletter schedule` would be
        code = textwrap.dedent(
            f"""
            from pathlib import Path
            from newsletter.store.locks import scheduler_lock
            with scheduler_lock(Path({str(lock)!r})):
                pass
            """
        )
        other = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert other.returncode != 0
        assert "already drives this state" in other.stderr
        # in the same process too
        with (
            pytest.raises(NewsletterError, match="already drives this state"),
            scheduler_lock(lock),
        ):
            pass
    # released on exit: a new holder gets it
    with scheduler_lock(lock):
        pass


def test_a_crashed_scheduler_releases_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "state.lock"
    code = f"""
import os
from pathlib import Path
from newsletter.store.locks import scheduler_lock
with scheduler_lock(Path({str(lock)!r})):
    os.kill(os.getpid(), 9)
"""
    crashed = subprocess.run([sys.executable, "-c", code], cwd=REPO)
    assert crashed.returncode == -9
    with scheduler_lock(lock):
        assert lock.read_text().strip().isdigit()


def test_interval_schedule_has_nothing_to_catch_up() -> None:
    c = config("{every_seconds: 5}")
    now = datetime(2026, 11, 23, 9, tzinfo=UTC)
    times = fire_times(make_trigger(c), now, 2)
    assert times[1] - times[0] == timedelta(seconds=5)
    assert decide_catch_up(c, make_trigger(c), now, lambda _id: False).action == "none"


SAMPLE = SAMPLES / "daily-papers-page.txt"


def recent_papers(folder: Path) -> Path:
    """The sample's papers re-dated to yesterday, so they are in this week's window whenever the
    tests run (the sample itself is from April 2026)."""
    yesterday = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    papers = [{**p.to_dict(), "published": yesterday} for p in read_source(str(SAMPLE))]
    path = folder / "papers.json"
    path.write_text(json.dumps(papers), encoding="utf-8")
    return path


def scheduler_site(tmp_path: Path, port: int, people: int) -> Path:
    (tmp_path / "config.yaml").write_text(
        f"sources: [{{file: {recent_papers(tmp_path)}}}]\n"
        "schedule: {every_seconds: 2}\n"
        "sender: {address: digest@papers.example.org}\n"
        "delivery: {transport: smtp, smtp: "
        f"{{host: 127.0.0.1, port: {port}, security: none, connections: 1}}}}\n"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "".join(f"- email: reader{i:02d}@example.org\n" for i in range(people))
    )
    return tmp_path


def start_scheduler(site: Path, log: Path | None = None) -> subprocess.Popen[str]:
    """`newsletter schedule` in `site`; its stderr into `log` (to watch it while it runs), or a
    pipe read when it ends."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_SECRET_KEY": "a-long-enough-secret-for-tests",
    }
    with contextlib.ExitStack() as files:  # the child keeps its own copy of the log file
        err = files.enter_context(log.open("w")) if log is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter", "schedule", "--config", "config.yaml"],
            cwd=site,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def wait_until(check, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return err


def test_schedule_process_delivers_over_smtp_and_stops_cleanly_on_sigterm(
    tmp_path: Path, smtp: SmtpServer
) -> None:

    site = scheduler_site(tmp_path, smtp.port, people=2)
    log = site / "schedule.log"
    proc = start_scheduler(site, log)
    wait_until(lambda: len(smtp.handler.received) >= 2, proc)
    # at least one more fire: the ledger sends nothing twice
    wait_until(lambda: log.read_text().count("0 sent, 0 failed") >= 1, proc)
    stop(proc)
    err = log.read_text()
    assert sorted(smtp.handler.counts().values()) == [1, 1]
    assert "scheduler started; next run: " in err
    assert "2 sent, 0 failed" in err  # the first run's counts
    assert "0 sent, 0 failed, 0 suppressed, 0 skipped" in err  # a later fire found nothing to do
    assert "SIGTERM: finishing the message in flight, then stopping" in err
    assert err.rstrip().endswith("scheduler stopped")
    assert "Traceback" not in err


def test_a_second_scheduler_process_on_the_same_state_refuses(
    tmp_path: Path, smtp: SmtpServer
) -> None:

    site = scheduler_site(tmp_path, smtp.port, people=1)
    first = start_scheduler(site)
    wait_until(lambda: (site / "newsletter.db.schedule.lock").exists(), first)
    time.sleep(0.5)
    second = start_scheduler(site)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith(
            f"error: another `newsletter schedule` (pid {first.pid}) already drives this state"
        )
    )
    stop(first)


def test_sigterm_during_a_send_finishes_the_message_and_a_restart_resumes(
    tmp_path: Path, smtp: SmtpServer
) -> None:

    smtp.handler.faults.delay = 0.2  # a slow server: the send takes seconds
    site = scheduler_site(tmp_path, smtp.port, people=30)
    proc = start_scheduler(site)
    wait_until(lambda: len(smtp.handler.received) >= 3, proc)
    err = stop(proc)  # mid-send
    sent_before_stop = len(smtp.handler.received)
    assert 3 <= sent_before_stop < 30, err
    assert "stopped early" in err or "pending" in err
    smtp.handler.faults.delay = 0.0
    again = start_scheduler(site)  # the next fire resumes the same issue
    wait_until(lambda: len(smtp.handler.received) >= 30, again)
    stop(again)
    counts = smtp.handler.counts()
    assert len(counts) == 30 and set(counts.values()) == {1}  # everyone exactly once


def test_a_run_with_rows_pending_is_retried_with_backoff_before_the_next_fire() -> None:
    c = config("{cron: '0 8 * * mon', retry_after_minutes: 30}")
    assert [retry_delay(c, n) for n in range(4)] == [
        timedelta(minutes=m) for m in (30, 60, 120, 240)
    ]
    assert retry_delay(c, 12) == timedelta(days=1)  # at most a day apart
    now = datetime(2026, 11, 23, 8, 20, tzinfo=UTC)  # a Monday's run just ended
    next_fire = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert plan_retry(c, 0, now, next_fire) == now + timedelta(minutes=30)
    assert plan_retry(c, 3, now, next_fire) == now + timedelta(hours=4)
    # the week is nearly over: the next fire comes first, no retry
    late = datetime(2026, 11, 30, 7, 45, tzinfo=UTC)
    assert plan_retry(c, 0, late, next_fire) is None


def test_retry_after_minutes_is_validated() -> None:
    with pytest.raises(ConfigError) as info:
        config("{retry_after_minutes: 0}")
    assert info.value.problems == [
        "config.yaml: schedule.retry_after_minutes: input should be greater than 0 (line 1)"
    ]


def test_scheduled_run_that_leaves_rows_pending_is_retried_and_finishes_before_next_week(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    # a daily fire whose last time is within the grace: the scheduler catches it up at start
    (tmp_path / "config.yaml").write_text(
        f"sources: [{{file: {recent_papers(tmp_path)}}}]\n"
        "schedule: {cron: '0 8 * * *', misfire_grace_hours: 24, retry_after_minutes: 0.01}\n"
        "sender: {address: digest@papers.example.org}\n"
        "delivery: {transport: smtp, max_consecutive_errors: 2, smtp: "
        f"{{host: 127.0.0.1, port: {smtp.port}, security: none, connections: 1}}}}\n"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "".join(f"- email: reader{i:02d}@example.org\n" for i in range(3))
    )
    # the relay refuses the first four messages: the run stops early, and so does its retry
    smtp.handler.faults.mail = ["451 4.3.2 System not accepting network messages"] * 4
    proc = start_scheduler(tmp_path)
    wait_until(lambda: len(smtp.handler.received) >= 3, proc)
    err = stop(proc)
    assert smtp.handler.counts() == Counter({f"reader{i:02d}@example.org": 1 for i in range(3)})
    runs = [line for line in err.splitlines() if "newsletter.schedule: run: issue" in line]
    assert len(runs) == 3 and all("stopped early: 2 errors in a row" in r for r in runs[:2])
    assert "3 still pending; retry 1 at " in err and "(in 0.6 s)" in err
    assert "retry 2 at " in err and "(in 1.2 s)" in err
    assert "3 sent, 0 failed" in runs[2] and "retry 3" not in err  # done: no more retries
