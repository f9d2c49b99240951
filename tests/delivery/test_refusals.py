"""Refusals about our side suppress no one; the circuit breaker stops a run they would ruin.

Each test runs a real SMTP server (aiosmtpd) that refuses the way a misconfigured relay does.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from newsletter.delivery import send as delivery
from newsletter.models import Issue
from newsletter.store.state import Store
from tests.support.sending import people, smtp_config, smtp_deliver
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.usefixtures("engine")  # each test both ways (conftest)

SENDER_REJECTED = "550 5.1.8 <digest@example.org>: Sender address rejected: Domain not found"


def test_a_relay_refusing_our_sender_suppresses_no_one_and_stops_the_run(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(25)
    smtp.handler.faults.rcpt_all = SENDER_REJECTED
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, audience, store)
    assert store.suppressed_set() == set()
    assert (report.suppressed, report.failed, report.sent) == (0, 0, 0)
    assert report.stopped_early
    # one line that quotes the server and says what to fix
    assert f'"RCPT: {SENDER_REJECTED}"' in report.reason
    assert "sender.address" in report.reason and "\n" not in report.reason
    assert report.summary().endswith(report.reason)
    assert store.ledger.counts(issue.id) == {"pending": 25, "sent": 0, "failed": 0, "skipped": 0}
    # it stopped after a handful of recipients, not after trying all 25
    assert len(smtp.handler.rcpt_commands) <= delivery.BREAKER_RECIPIENTS + 2

    # the sender is fixed: a rerun sends every row, once
    smtp.handler.faults.rcpt_all = None
    again = smtp_deliver(issue, config, audience, store)
    assert (again.sent, again.failed, again.pending, again.stopped_early) == (25, 0, 0, False)
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_a_relay_refusing_our_size_suppresses_no_one_and_says_so(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(25)
    smtp.handler.faults.max_size = 20_000  # the HTML issue is larger
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, audience, store)
    assert store.suppressed_set() == set()
    assert report.stopped_early and report.suppressed == 0
    assert '"DATA: 552 5.2.3 Message size exceeds fixed maximum message size"' in report.reason
    assert "size" in report.reason.split('"')[-1]  # the advice, after the quoted reply
    assert store.ledger.counts(issue.id)["pending"] == 25
    smtp.handler.faults.max_size = None
    again = smtp_deliver(issue, config, audience, store)
    assert (again.sent, again.pending) == (25, 0)
    assert smtp.handler.counts() == Counter({s.email: 1 for s in audience})


def test_a_relay_refusing_to_relay_for_us_says_to_log_in(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    smtp.handler.faults.rcpt_all = "554 5.7.1 <reader000@example.com>: Relay access denied"
    config = smtp_config(tmp_path, smtp, connections=1)
    report = smtp_deliver(issue, config, people(12), store)
    assert report.stopped_early and store.suppressed_set() == set()
    assert "Relay access denied" in report.reason and "delivery.smtp.username" in report.reason
    assert store.ledger.counts(issue.id)["pending"] == 12


def test_one_dead_mailbox_is_suppressed_and_no_one_else(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    audience = people(25)
    dead = "reader007@example.com"
    smtp.handler.faults.rcpt = {dead: ["550 5.1.1 <reader007@example.com>: User unknown"]}
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, audience, store)
    assert store.suppressed_set() == {dead}
    assert (report.sent, report.failed, report.suppressed, report.stopped_early) == (
        24,
        1,
        1,
        False,
    )
    (row,) = store.ledger.rows(issue.id, "failed")
    assert row.email == dead and "550 5.1.1" in str(row.last_error)


def test_a_full_mailbox_is_retried_not_suppressed(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    full = "reader003@example.com"
    smtp.handler.faults.rcpt = {full: ["552 5.2.2 <reader003@example.com>: Mailbox full"]}
    config = smtp_config(tmp_path, smtp, connections=1)
    report = smtp_deliver(issue, config, people(5), store)
    assert store.suppressed_set() == set()
    assert (report.sent, report.failed, report.suppressed) == (5, 0, 0)
    assert smtp.handler.rcpt_commands[full] == 2  # refused once, then taken


def test_a_single_refusal_of_the_message_fails_it_without_suppressing_or_stopping(
    tmp_path: Path, issue: Issue, store: Store, smtp: SmtpServer
) -> None:
    spam = "reader004@example.com"
    smtp.handler.faults.data = {spam: ["554 5.7.1 Message rejected as spam"]}
    config = smtp_config(tmp_path, smtp, connections=2)
    report = smtp_deliver(issue, config, people(10), store)
    assert (report.sent, report.failed, report.suppressed, report.stopped_early) == (
        9,
        1,
        0,
        False,
    )
    assert store.suppressed_set() == set()
    (row,) = store.ledger.rows(issue.id, "failed")
    assert row.email == spam and "554 5.7.1 Message rejected as spam" in str(row.last_error)
