"""Deferred and unanswered messages are retried: within a run (greylisting) and by later runs.

Each test runs a real SMTP server (aiosmtpd) that defers or cuts off the way real relays do.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from newsletter.config import parse_config
from newsletter.delivery.send import RetryPolicy
from newsletter.errors import ConfigError
from newsletter.models import Issue
from newsletter.store.state import Store
from tests.support.sending import people, smtp_config, smtp_deliver
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.usefixtures("engine")  # each test both ways (conftest)


def test_greylisting_does_not_stop_the_run_and_one_run_delivers_everyone(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(25)
    smtp.handler.faults.greylist = 0.3  # every address is refused for 0.3 s after its first try
    config = smtp_config(tmp_path, smtp, "max_consecutive_errors: 3", connections=2)
    report = smtp_deliver(issue, config, audience, store)
    assert not report.stopped_early, report.reason
    assert (report.sent, report.failed, report.pending) == (25, 0, 0)
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})
    # each address was really refused first, then taken on a later try
    assert all(smtp.handler.rcpt_commands[s.email] >= 2 for s in audience)
    assert store.ledger.counts(issue.id)["sent"] == 25


def test_deferrals_are_retried_only_within_the_configured_time(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(6)
    smtp.handler.faults.greylist = 60.0  # far longer than this run may retry
    config = smtp_config(tmp_path, smtp, "retry_minutes: 0.05", connections=2)  # 3 s
    every_second = RetryPolicy(backoff=1.0, max_backoff=1.0)  # tries at 0, 1, 2 (and 3) s
    report = smtp_deliver(issue, config, audience, store, retry=every_second)
    assert not report.stopped_early
    assert (report.sent, report.failed, report.to_retry, report.pending) == (0, 0, 6, 6)
    assert "0 sent, 0 failed, 0 suppressed, 0 skipped, 6 to retry" in report.summary()
    assert store.ledger.to_retry(issue.id) == 6
    # retried, then given up after retry_minutes: not kept trying for the greylist's minute
    assert all(2 <= smtp.handler.rcpt_commands[s.email] <= 4 for s in audience)
    smtp.handler.faults.greylist = None  # the greylist has passed
    again = smtp_deliver(issue, config, audience, store)  # a later run
    assert (again.sent, again.to_retry, again.pending) == (6, 0, 0)
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_a_run_plus_one_rerun_deliver_to_everyone_under_dropped_connections(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(25)
    unlucky = "reader011@example.com"
    faults = smtp.handler.faults
    faults.drop_every = 7  # cut the connection instead of answering every 7th message
    faults.drop_after_body = {unlucky: 2}  # and twice in a row for one recipient
    config = smtp_config(tmp_path, smtp, connections=2)
    first = smtp_deliver(issue, config, audience, store)
    assert smtp.handler.dropped >= 4
    assert not first.stopped_early and first.failed == 0
    retry = {r.email for r in store.ledger.rows(issue.id, "pending")}
    assert unlucky in retry and first.to_retry == len(retry)
    assert f"{first.to_retry} to retry" in first.summary()
    (row,) = (r for r in store.ledger.rows(issue.id) if r.email == unlucky)
    assert row.attempts == 2 and "it may have arrived" in str(row.last_error)

    second = smtp_deliver(issue, config, audience, store)
    assert (second.failed, second.to_retry, second.pending) == (0, 0, 0)
    assert second.already_sent == 25 - len(retry) and second.sent == len(retry)
    # everyone has it, and this server keeps nothing it cut off: no one has it twice
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_attempts_are_counted_across_runs_and_bounded(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    stuck = "reader001@example.com"
    smtp.handler.faults.rcpt = {stuck: ["451 4.3.0 Temporary lookup failure"] * 100}
    config = smtp_config(tmp_path, smtp, "max_attempts: 3\n  retry_minutes: 0", connections=1)
    reports = [smtp_deliver(issue, config, people(3), store) for _ in range(4)]
    assert [r.to_retry for r in reports] == [1, 1, 0, 0]
    assert [r.failed for r in reports] == [0, 0, 1, 0]
    assert reports[3].failed_before == 1 and reports[3].sent == 0
    (row,) = store.ledger.rows(issue.id, "failed")
    assert row.email == stuck and row.attempts == 3
    assert str(row.last_error).startswith("gave up after 3 attempts: RCPT: 451 4.3.0")
    assert smtp.handler.rcpt_commands[stuck] == 3  # a failed row is never tried again
    assert not store.is_suppressed(stuck)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("retry_minutes: -1", "delivery.retry_minutes: input should be greater than or equal to 0"),
        ("max_attempts: 0", "delivery.max_attempts: input should be greater than or equal to 1"),
        ("retry_minutes: soon", "delivery.retry_minutes: expected a number"),
    ],
)
def test_retry_settings_are_validated(line: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(f"delivery:\n  {line}\n", "config.yaml")
    assert any(problem in p for p in info.value.problems), info.value.problems
