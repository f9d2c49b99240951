from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.support.cli import newsletter
from tests.support.paths import DATA, REPO
from tests.support.smtp_server import SmtpServer


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `python -m newsletter` process, as a user would."""
    return newsletter(*args, cwd=cwd)


def all_commands(group: click.Group, prefix: str = "newsletter") -> list[str]:
    names = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(all_commands(command, path))
        else:
            names.append(path)
    return names


def test_every_command_is_documented_in_the_readme_and_has_help() -> None:
    readme = (REPO / "README.md").read_text()
    commands = all_commands(cli)
    assert len(commands) >= 6
    for command in commands:
        assert re.search(rf"`{re.escape(command)}\b", readme), f"{command} missing from README"
        args = command.split()[1:]
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("titel: x\ntopics:\n  - name: A\n    keywords: image\n")
    result = run("check", "--config", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        f"error: {bad}: titel: unknown key (did you mean 'title'?); known keys: "
    )
    assert lines[0].endswith(" (line 1)")
    assert lines[1] == f"error: {bad}: topics[0].keywords: expected a list of strings (line 4)"
    assert "Traceback" not in result.stderr


def test_papers_json_lists_the_sample(tmp_path: Path) -> None:
    result = run("papers", str(DATA / "samples" / "daily-papers-page.txt"), "--format", "json")
    assert result.returncode == 0, result.stderr
    papers = json.loads(result.stdout)
    assert len(papers) == 83
    assert (
        papers[0]["title"] == "Improved Distribution Matching Distillation for Fast Image Synthesis"
    )
    assert result.stderr.strip().splitlines()[-1] == "83 papers from 1 source(s)"


def test_papers_of_a_missing_file_is_one_line_and_nonzero(tmp_path: Path) -> None:
    result = run("papers", str(tmp_path / "missing.json"))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "missing.json" in result.stderr


@pytest.mark.parametrize(
    ("name", "data"),
    [("hostname", b"vm\n"), ("ls", b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)))],
)
def test_papers_refuses_a_file_in_no_known_format_in_one_line(
    tmp_path: Path, name: str, data: bytes
) -> None:
    # `newsletter papers /etc/hostname` once listed a paper called "vm" and exited 0
    path = tmp_path / name
    path.write_bytes(data)
    result = run("papers", str(path))
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    line = result.stderr
    assert str(path) in line and "no format this program reads" in line
    for accepted in ("Daily Papers page text", "Daily Papers API", "arXiv", "JSON Lines", "YAML"):
        assert accepted in line, line


def test_the_quick_start_leaves_git_status_clean(tmp_path: Path) -> None:
    # a checkout where the quick start ran: its state, lock files and outbox are all ignored
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".gitignore").write_bytes((REPO / ".gitignore").read_bytes())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", ".gitignore"], ["commit", "-qm", "ignore"]):
        subprocess.run([*git, *args], cwd=checkout, check=True)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "NEWSLETTER_SECRET_KEY": "quick-start-key-0123456",
    }
    env.pop("NEWSLETTER_CONFIG", None)
    for command in (["run"], ["preview"]):
        done = subprocess.run(
            [sys.executable, "-m", "newsletter", *command, "--papers", "sample"]
            + (
                ["--subscribers", str(REPO / "subscribers.example.yaml")]
                if command == ["run"]
                else []
            ),
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    assert (checkout / "newsletter.db").is_file() and (checkout / "outbox" / "new").is_dir()
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored=no"],
        cwd=checkout,
        capture_output=True,
        text=True,
    )
    assert status.stdout == "", status.stdout


def test_topics_assign_json_has_the_documented_fields() -> None:
    result = run(
        "topics", "assign", str(DATA / "samples" / "hf-daily-papers-api.json"), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert len(items) == 30
    assert set(items[0]) == {"id", "title", "topic", "topics", "score", "matched"}
    matched = [i for i in items if i["topic"] != "Other"]
    assert matched, "no paper matched any default topic"
    for item in matched:
        assert item["topics"][0] == item["topic"]
        assert item["matched"] and {"keyword", "field", "count", "weight"} <= set(
            item["matched"][0]
        )
    assert result.stderr.strip().splitlines()[-1].startswith("30 papers: ")


def test_topics_explain_names_the_rule_and_runner_up() -> None:
    sample = str(DATA / "samples" / "daily-papers-page.txt")
    title = "Improved Distribution Matching Distillation for Fast Image Synthesis"
    result = run("topics", "explain", title, sample)
    assert result.returncode == 0, result.stderr
    assert title in result.stdout
    assert "runner-up" in result.stdout.lower()
    assert '"image synthesis" in title, abstract (weight ' in result.stdout
    assert result.stderr.strip().startswith("explain: title:")
    assert result.stderr.strip().endswith("1 of 83 papers")
    # the same weights as `topics assign` of the same papers, so the same score
    assigned = json.loads(run("topics", "assign", sample, "--format", "json").stdout)
    score = next(item["score"] for item in assigned if item["title"] == title)
    assert f"(score {score:.2f})" in result.stdout


def test_topics_explain_unknown_paper_is_an_error() -> None:
    result = run("topics", "explain", "9999.99999", str(DATA / "samples" / "daily-papers-page.txt"))
    assert result.returncode == 1
    assert "no paper with id or title '9999.99999'" in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_python_dash_m_works(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0 and "newsletter" in result.stdout.lower()


# -- the audience and the archive, as a user drives them ------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "config.yaml").write_text(
        "base_url: https://papers.example.org\ndelivery: {transport: outbox, outbox: out/}\n"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "- email: alice@example.org\n- email: bob@example.com\n  topics: [LLM Reasoning]\n"
    )
    return tmp_path


def cli_in(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEWSLETTER_SECRET_KEY": "x" * 32}
    env.pop("NEWSLETTER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        cwd=site,
        env=env,
        timeout=120,
    )


def listed(site: Path) -> dict[str, dict]:
    result = cli_in(site, "subscribers", "list", "--format", "json")
    assert result.returncode == 0, result.stderr
    return {row["email"]: row for row in json.loads(result.stdout)}


def test_run_with_a_missing_papers_file_names_it_first_and_writes_nothing(site: Path) -> None:
    (site / "subscribers.yaml").unlink()  # and nobody to send to yet: the file is named first
    result = cli_in(site, "run", "--papers", "missing.json")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and "missing.json: no such file" in lines[0], lines
    assert "nobody to send to" not in result.stderr
    issues = cli_in(site, "issues", "--format", "json")
    assert issues.returncode == 0 and json.loads(issues.stdout) == []


def test_a_failed_run_leaves_newsletter_issues_empty(site: Path) -> None:
    (site / "tpl").mkdir()
    (site / "tpl" / "email.txt").write_text("{{ title }\n")
    with (site / "config.yaml").open("a") as f:
        f.write("templates_dir: tpl\n")
    result = cli_in(site, "run", "--papers", "sample")
    assert result.returncode != 0 and "email.txt" in result.stderr
    issues = cli_in(site, "issues", "--format", "json")
    assert issues.returncode == 0 and json.loads(issues.stdout) == []
    assert not (site / "out").exists()


def test_subscribers_add_remove_and_list(site: Path) -> None:
    hand_written = (site / "subscribers.yaml").read_text()
    assert set(listed(site)) == {"alice@example.org", "bob@example.com"}
    added = cli_in(site, "subscribers", "add", "Carol@Example.org", "--topics", "llm reasoning")
    assert added.returncode == 0, added.stderr
    assert added.stderr.strip().endswith("carol@example.org added")
    carol = listed(site)["carol@example.org"]
    assert (carol["source"], carol["status"], carol["topics"]) == (
        "cli",
        "confirmed",
        ["LLM Reasoning"],
    )

    removed = cli_in(site, "subscribers", "remove", "ALICE@example.org")
    assert removed.returncode == 0 and "alice@example.org removed" in removed.stderr
    rows = listed(site)
    assert rows["alice@example.org"]["suppressed"] == "removed"
    assert rows["alice@example.org"]["receives"] is False
    assert rows["bob@example.com"]["receives"] is True
    assert (site / "subscribers.yaml").read_text() == hand_written  # never rewritten

    table = cli_in(site, "subscribers", "list")
    assert table.stderr.strip().splitlines()[-1] == (
        "subscribers: 2 receive the next issue; 0 pending, 1 suppressed (1 cli, 2 file)"
    )


def test_subscribers_add_and_remove_refuse_bad_input(site: Path) -> None:
    bad = cli_in(site, "subscribers", "remove", "not an email")
    assert bad.returncode == 1 and bad.stderr.startswith("error: 'not an email' is not a valid")
    unknown = cli_in(site, "subscribers", "add", "d@example.org", "--topics", "LLM Reasonin")
    assert unknown.returncode == 1
    assert "unknown topic 'LLM Reasonin' (did you mean 'LLM Reasoning'?)" in unknown.stderr
    assert "d@example.org" not in listed(site)


def test_subscribers_import_reports_bad_rows_and_adds_the_rest(site: Path) -> None:
    (site / "list.csv").write_text(
        "email,name,topics,format\nann@example.org,Ann,,html\nnope@,,,\nben@example.org,,,text\n"
    )
    result = cli_in(site, "subscribers", "import", "list.csv")
    assert result.returncode == 1  # one row was skipped
    assert "list.csv: line 3: 'nope@' is not a valid address" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "import: 2 added, 0 already there, 1 skipped"
    rows = listed(site)
    assert rows["ben@example.org"]["format"] == "text" and rows["ann@example.org"]["receives"]


def test_run_send_and_issues(site: Path) -> None:
    sample = str(DATA / "samples" / "daily-papers-page.txt")
    first = cli_in(site, "run", "--papers", sample, "--issue-id", "2026-W48")
    assert first.returncode == 0, first.stderr
    assert "messages are in the outbox Maildir: " in first.stderr
    assert (
        first.stderr.strip()
        .splitlines()[-1]
        .startswith("run: issue 2026-W48: 83 papers, 2 subscribers; 2 sent, 0 failed")
    )
    assert len(list((site / "out" / "new").iterdir())) == 2

    cli_in(site, "subscribers", "add", "late@example.org")
    resumed = cli_in(site, "send", "2026-W48")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 sent, 0 failed, 0 suppressed, 0 skipped, 2 sent before" in resumed.stderr
    assert len(list((site / "out" / "new").iterdir())) == 3

    issues = cli_in(site, "issues", "--format", "json")
    [row] = json.loads(issues.stdout)
    assert (row["id"], row["papers"], row["ledger"]["sent"]) == ("2026-W48", 83, 3)
    assert issues.stderr.strip() == "1 issue(s) in the archive"

    missing = cli_in(site, "send", "2030-W01")
    assert missing.returncode == 1 and "issue 2030-W01 is not in the archive" in missing.stderr
    bad_id = cli_in(site, "run", "--issue-id", "../x")
    assert bad_id.returncode == 2 and "'../x' is not an issue id" in bad_id.stderr


def test_schedule_next_prints_fire_times_in_the_timezone(site: Path) -> None:
    (site / "config.yaml").write_text(
        "timezone: Europe/Berlin\nschedule: {cron: '30 7 * * tue,fri'}\n"
    )
    result = cli_in(site, "schedule", "--next", "3")
    assert result.returncode == 0, result.stderr
    times = result.stdout.split()
    assert len(times) == 3 and all(t.endswith(("+01:00", "+02:00")) for t in times)
    assert all("T07:30:00" in t for t in times)
    assert cli_in(site, "schedule", "--next", "0").returncode == 2


def test_sigterm_during_run_finishes_in_flight_and_a_rerun_completes(
    site: Path, smtp: SmtpServer
) -> None:
    import signal
    import time

    sample = str(DATA / "samples" / "daily-papers-page.txt")
    (site / "subscribers.yaml").write_text(
        "".join(f"- email: r{i:02d}@example.org\n" for i in range(25))
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEWSLETTER_SECRET_KEY": "x" * 32}
    smtp.handler.faults.delay = 0.2
    (site / "config.yaml").write_text(
        "delivery: {transport: smtp, smtp: "
        f"{{host: 127.0.0.1, port: {smtp.port}, security: none, connections: 1}}}}\n"
    )
    args = [sys.executable, "-m", "newsletter", "run", "--papers", sample]
    proc = subprocess.Popen(args, cwd=site, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(smtp.handler.received) < 2:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err  # stopped early: not everyone has it yet
    assert "SIGTERM: finishing the messages in flight" in err
    assert "stopped early: stop requested" in err.strip().splitlines()[-1]
    first = len(smtp.handler.received)
    assert 2 <= first < 25
    smtp.handler.faults.delay = 0.0
    again = cli_in(site, "run", "--papers", sample)
    assert again.returncode == 0, again.stderr
    assert f"{25 - first} sent, 0 failed" in again.stderr
    assert set(smtp.handler.counts().values()) == {1}
    assert len(smtp.handler.counts()) == 25


def test_a_relay_refusing_our_sender_stops_run_with_one_line_and_suppresses_no_one(
    site: Path, smtp: SmtpServer
) -> None:
    sample = str(DATA / "samples" / "daily-papers-page.txt")
    (site / "subscribers.yaml").write_text(
        "".join(f"- email: r{i:02d}@example.org\n" for i in range(25))
    )
    (site / "config.yaml").write_text(
        "sender: {address: digest@papers.example.org}\n"
        "delivery: {transport: smtp, smtp: "
        f"{{host: 127.0.0.1, port: {smtp.port}, security: none, connections: 2}}}}\n"
    )
    reply = "550 5.1.8 <digest@papers.example.org>: Sender address rejected: Domain not found"
    smtp.handler.faults.rcpt_all = reply
    first = cli_in(site, "run", "--papers", sample)
    assert first.returncode == 1
    assert first.stderr.count(reply) == 1, first.stderr  # one line says it, and it is the last
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("run: issue ") and "0 sent, 0 failed, 0 suppressed" in last
    assert f'"RCPT: {reply}"' in last and "set sender.address" in last
    assert not any(row["suppressed"] for row in listed(site).values())
    [issue] = json.loads(cli_in(site, "issues", "--format", "json").stdout)
    assert (issue["ledger"]["pending"], issue["ledger"]["failed"]) == (25, 0)

    smtp.handler.faults.rcpt_all = None  # the sender's domain is fixed
    again = cli_in(site, "run", "--papers", sample)
    assert again.returncode == 0, again.stderr
    assert "25 sent, 0 failed, 0 suppressed" in again.stderr
    assert set(smtp.handler.counts().values()) == {1} and len(smtp.handler.counts()) == 25


def test_issues_says_which_failures_are_permanent_and_which_are_retried(
    site: Path, smtp: SmtpServer
) -> None:
    sample = str(DATA / "samples" / "daily-papers-page.txt")
    (site / "subscribers.yaml").write_text(
        "- email: gone@example.org\n- email: grey@example.org\n- email: ok@example.org\n"
    )
    (site / "config.yaml").write_text(
        "delivery: {transport: smtp, retry_minutes: 0, smtp: "
        f"{{host: 127.0.0.1, port: {smtp.port}, security: none, connections: 1}}}}\n"
    )
    smtp.handler.faults.rcpt = {
        "gone@example.org": ["550 5.1.1 <gone@example.org>: Recipient address rejected"],
        "grey@example.org": ["450 4.2.0 <grey@example.org>: Greylisted"],
    }
    first = cli_in(site, "run", "--papers", sample, "--issue-id", "2026-W48")
    assert first.returncode == 1  # not everyone has it yet
    last = first.stderr.strip().splitlines()[-1]
    assert "1 sent, 1 failed, 1 suppressed, 0 skipped, 1 to retry" in last
    table = cli_in(site, "issues")
    assert "1 sent, 1 failed for good, 1 to retry" in table.stdout
    [row] = json.loads(cli_in(site, "issues", "--format", "json").stdout)
    assert (row["ledger"]["failed"], row["ledger"]["pending"], row["to_retry"]) == (1, 1, 1)

    again = cli_in(site, "send", "2026-W48")  # the greylist has passed
    assert again.returncode == 0, again.stderr
    assert "1 sent, 0 failed, 0 suppressed, 0 skipped, 1 sent before, 1 failed before" in (
        again.stderr
    )
    assert "2 sent, 1 failed for good" in cli_in(site, "issues").stdout


def test_subscribers_list_shows_why_and_a_wrong_bounce_can_be_lifted(site: Path) -> None:
    from newsletter.store import Store

    with Store.open(site / "newsletter.db") as store:  # what an earlier version did
        store.suppress("alice@example.org", "bounced", "RCPT: 550 5.1.8 Sender address rejected")
        store.suppress("bob@example.com", "bounced", "RCPT: 550 5.1.8 Sender address rejected")
        store.suppress("dead@example.org", "bounced", "RCPT: 550 5.1.1 User unknown")
        store.suppress("left@example.org", "unsubscribed", "one-click unsubscribe")
    table = cli_in(site, "subscribers", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    why = next(line for line in lines if line.startswith("alice@example.org") and "5.1.8" in line)
    assert "bounced" in why and "RCPT: 550 5.1.8 Sender address rejected" in why
    rows = listed(site)
    assert rows["dead@example.org"]["suppressed_detail"] == "RCPT: 550 5.1.1 User unknown"

    refused = cli_in(site, "subscribers", "unbounce", "left@example.org")
    assert refused.returncode == 1
    assert "left@example.org is suppressed because unsubscribed, not bounced" in refused.stderr
    assert listed(site)["left@example.org"]["suppressed"] == "unsubscribed"

    lifted = cli_in(site, "subscribers", "unbounce", "--reply", "5.1.8")
    assert lifted.returncode == 0, lifted.stderr
    assert lifted.stderr.strip().splitlines()[-1] == "unbounce: 2 bounce suppression(s) lifted"
    rows = listed(site)
    assert rows["alice@example.org"]["receives"] and rows["bob@example.com"]["receives"]
    assert rows["dead@example.org"]["suppressed"] == "bounced"

    one = cli_in(site, "subscribers", "unbounce", "DEAD@example.org")
    assert one.returncode == 0 and "dead@example.org" in one.stdout
    nothing = cli_in(site, "subscribers", "unbounce", "nobody@example.org")
    assert nothing.returncode == 1 and "nobody@example.org is not suppressed" in nothing.stderr
