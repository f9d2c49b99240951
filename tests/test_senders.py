"""Several senders on one state, as several hosts would run them: real `newsletter` processes,
each with a config folder of its own, on one PostgreSQL state, delivering to one SMTP server.

What must hold: one issue is built and archived however many start together, every subscriber
gets it exactly once, every sender sends a share and exits 0, a sender that dies gives its rows
to the others when its lease runs out, and a SIGKILL mid-send costs at most one duplicate per
connection that was in flight (on SQLite and on PostgreSQL alike).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from newsletter.store.state import Store
from tests.support.paths import REPO, SAMPLES
from tests.support.smtp_server import SmtpServer

SAMPLE = SAMPLES / "daily-papers-page.txt"
KEY = "a-long-enough-secret-for-tests"
SENT = re.compile(r"; (\d+) sent, ")


def site(
    folder: Path, state: str, port: int, people: int, extra: str = "", lease: float = 60
) -> Path:
    """A config folder as one host would have it: its own config and subscribers file."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(
        f"sources: [{{file: {SAMPLE}}}]\n"
        "window_days: 366\n"  # the sample's papers are from April: keep them in the window
        f"state: '{state}'\n"
        f"sender: {{address: digest+{folder.name}@papers.example.org}}\n"
        f"delivery: {{transport: smtp, lease_seconds: {lease}, smtp: "
        f"{{host: 127.0.0.1, port: {port}, security: none, connections: 3}}}}\n" + extra
    )
    (folder / "subscribers.yaml").write_text(
        "".join(f"- email: reader{i:04d}@example.org\n" for i in range(people))
    )
    return folder


def start(folder: Path, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    """`newsletter ARGS` in `folder`; its output into `log` (to watch it while it runs), or
    pipes read when it ends."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEWSLETTER_SECRET_KEY": KEY}
    with contextlib.ExitStack() as files:  # the child keeps its own copy of the log file
        out = files.enter_context(log.open("w")) if log is not None else subprocess.PIPE
        return subprocess.Popen(
            [sys.executable, "-m", "newsletter", *args],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if log is not None else subprocess.PIPE,
            text=True,
        )


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, (out or "") + (err or "")


def sent_by(output: str) -> int:
    """The `N sent` of a run's counts line."""
    lines = [line for line in output.splitlines() if line.startswith("run: issue")]
    assert len(lines) == 1, output[-2000:]
    found = SENT.search(lines[0])
    assert found, lines[0]
    return int(found.group(1))


def wait_for(check, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_two_senders_starting_together_build_one_issue_and_share_its_send(
    tmp_path: Path, pg_url: str, smtp: SmtpServer
) -> None:
    people = 400
    smtp.handler.faults.delay = 0.02  # slow enough for both to be sending at once (2.7 s alone)
    hosts = [site(tmp_path / name, pg_url, smtp.port, people) for name in ("a", "b")]
    procs = [start(h, "run") for h in hosts]  # together: both find no issue archived yet
    results = [finish(p) for p in procs]
    for code, output in results:
        assert code == 0, output[-2000:]
        assert "Traceback" not in output and "duplicate key" not in output
    counts = smtp.handler.counts()
    assert set(counts) == {f"reader{i:04d}@example.org" for i in range(people)}
    assert set(counts.values()) == {1}  # everyone exactly once
    shares = [sent_by(output) for _, output in results]
    assert sum(shares) == people and min(shares) > 0, shares  # both sent a share
    by_host = Counter(r.mail_from for r in smtp.handler.received)
    assert by_host == {
        f"digest+{h.name}@papers.example.org": n for h, n in zip(hosts, shares, strict=True)
    }
    with Store.open(pg_url) as store:
        (issue,) = store.archive.list_issues()  # built and archived once
        assert issue.ledger == {"pending": 0, "sent": people, "failed": 0, "skipped": 0}
        assert not any(r.lease_owner for r in store.ledger.rows(issue.id))  # all given back


def test_a_sender_killed_mid_batch_leaves_its_rows_to_the_other_after_its_lease(
    tmp_path: Path, pg_url: str, smtp: SmtpServer
) -> None:
    people = 300
    smtp.handler.faults.delay = 0.01
    # a short lease, so that the test waits seconds for the dead sender's rows, not a minute
    hosts = [site(tmp_path / name, pg_url, smtp.port, people, lease=3) for name in ("a", "b")]
    first = start(hosts[0], "run")
    wait_for(lambda: len(smtp.handler.received) >= 30, first)
    first.send_signal(signal.SIGKILL)  # mid-batch: it holds rows it claimed and never sent
    first.communicate()
    before = sum(smtp.handler.counts().values())
    assert before < people
    with Store.open(pg_url) as store:
        (issue,) = store.archive.list_issues()
        held = [r for r in store.ledger.rows(issue.id, "pending") if r.lease_owner]
    assert held  # the dead sender's claim is still on them
    lease_end = min(r.lease_until for r in held if r.lease_until is not None)
    code, output = finish(start(hosts[1], "send", issue.id))
    assert code == 0, output[-2000:]
    counts = smtp.handler.counts()
    assert set(counts) == {f"reader{i:04d}@example.org" for i in range(people)}  # none lost
    # only a message in flight when the first one died can go out twice: one per connection
    assert sum(c - 1 for c in counts.values()) <= 3, counts.most_common(5)
    with Store.open(pg_url) as store:
        assert store.ledger.counts(issue.id)["sent"] == people
        rows = {r.email: r for r in store.ledger.rows(issue.id)}
    # the rows the dead sender held were sent by the other, and only once their lease ran out
    assert all(rows[r.email].updated_at >= lease_end for r in held)


SENDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from newsletter import resources
    from newsletter.config import parse_config
    from newsletter.job import send_rendered
    from newsletter.topics.issue import build_issue
    from newsletter.models import Subscriber
    from newsletter.delivery.smtp import SmtpTransport
    from newsletter.sources import read_source
    from newsletter.store.state import Store

    port, db, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    now = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
    config = parse_config(
        resources.default_config_text()
        + f"delivery: {{transport: smtp, lease_seconds: 2, smtp: {{host: 127.0.0.1, "
        + f"port: {port}, security: none, connections: 3}}}}\\n"
    )
    issue = build_issue(
        read_source("sample", now=now),
        config.issue_settings(),
        now=now,
        issue_id="2026-W48",
        use_window=False,
    )
    audience = [Subscriber(f"crash{i:04d}@example.com") for i in range(n)]
    with Store.open(db) as store:
        report = send_rendered(issue, config, audience, store, SmtpTransport(config.delivery.smtp))
    print(report.summary())
    sys.exit(1 if report.stopped_early or report.pending else 0)
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_sigkill_mid_send_loses_no_one_and_duplicates_at_most_one_per_connection(
    tmp_path: Path, smtp: SmtpServer, backend: str, request: pytest.FixtureRequest
) -> None:
    n, connections = 150, 3
    script = tmp_path / "send.py"
    script.write_text(SENDER_SCRIPT)
    db = str(tmp_path / "state.db") if backend == "sqlite" else request.getfixturevalue("pg_url")
    env = {
        **os.environ,
        "NEWSLETTER_SECRET_KEY": "crash-test-key-0123456789",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, str(script), str(smtp.port), db, str(n)]
    smtp.handler.faults.delay = 0.01  # slow enough to kill it part-way
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while sum(smtp.handler.counts().values()) < 40:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = sum(smtp.handler.counts().values())
    assert 40 <= before < n  # it really died part-way
    smtp.handler.faults.delay = 0
    # the rerun resumes at once on SQLite; on PostgreSQL it takes the dead one's rows when
    # their lease (2 s here) runs out
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    counts = smtp.handler.counts()
    assert set(counts) == {f"crash{i:04d}@example.com" for i in range(n)}
    duplicates = sum(c - 1 for c in counts.values())
    assert duplicates <= connections, counts.most_common(5)
    with Store.open(db) as store:
        assert store.ledger.counts("2026-W48") == {
            "pending": 0,
            "sent": n,
            "failed": 0,
            "skipped": 0,
        }


def test_schedulers_on_two_hosts_both_fire_and_send_each_issue_once(
    tmp_path: Path, pg_url: str, smtp: SmtpServer
) -> None:
    people = 60
    smtp.handler.faults.delay = 0.01
    hosts = [
        site(tmp_path / name, pg_url, smtp.port, people, "schedule: {every_seconds: 2}\n")
        for name in ("a", "b")
    ]
    logs = [h / "schedule.log" for h in hosts]
    procs = [start(h, "schedule", log=log) for h, log in zip(hosts, logs, strict=True)]
    deadline = time.monotonic() + 90

    def fires(log: Path) -> int:
        return log.read_text().count("newsletter.schedule: run: issue")

    # everyone reached, and each scheduler has fired again since: nothing was left to send
    reached_at: list[int] = []
    while (
        len(smtp.handler.received) < people
        or not reached_at
        or any(fires(log) <= n for log, n in zip(logs, reached_at, strict=True))
    ):
        if len(smtp.handler.received) >= people and not reached_at:
            reached_at = [fires(log) for log in logs]
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    outputs: list[str] = []
    for proc, log in zip(procs, logs, strict=True):
        proc.send_signal(signal.SIGTERM)
        code, _ = finish(proc, timeout=60)
        output = log.read_text()
        assert code == 0, output[-2000:]
        outputs.append(output)
    counts = smtp.handler.counts()
    assert len(counts) == people and set(counts.values()) == {1}
    for output in outputs:  # each scheduler ran the weekly job, and none failed
        assert "newsletter.schedule: run: issue" in output and "failed: " not in output
        assert "Traceback" not in output
