"""`--subscribers FILE` wherever the audience is read: run, subscribers list, check, preview."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import newsletter
from tests.support.paths import REPO

EXAMPLE = "subscribers.example.yaml"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return newsletter(*args, cwd=cwd, NEWSLETTER_SECRET_KEY="k" * 40)


@pytest.fixture
def quick_start(tmp_path: Path) -> Path:
    """A folder after the README's quick start (the bundled config, the example subscribers)."""
    shutil.copy(REPO / EXAMPLE, tmp_path / EXAMPLE)
    result = run("run", "--papers", "sample", "--subscribers", EXAMPLE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert ", 4 subscribers; 4 sent, 0 failed" in result.stderr
    return tmp_path


def test_subscribers_list_reads_the_file_run_sent_to(quick_start: Path) -> None:
    result = run("subscribers", "list", "--subscribers", EXAMPLE, cwd=quick_start)
    assert result.returncode == 0, result.stderr
    for address in (
        "alice@example.org",
        "bob@example.com",
        "carol@example.org",
        "dave@example.com",
    ):
        assert address in result.stdout
    assert result.stderr.strip() == (
        "subscribers: 4 receive the next issue; 0 pending, 0 suppressed (4 file)"
    )
    rows = json.loads(
        run(
            "subscribers", "list", "--subscribers", EXAMPLE, "--format", "json", cwd=quick_start
        ).stdout
    )
    carol = next(r for r in rows if r["email"] == "carol@example.org")
    assert carol["format"] == "text" and carol["topics"] == ["Diffusion & Image Generation"]
    # without the option it reads the config's `subscribers.yaml`, which the quick start lacks
    plain = run("subscribers", "list", cwd=quick_start)
    assert plain.stderr.strip().startswith("subscribers: 0 receive the next issue")


def test_a_missing_subscribers_file_is_one_line_and_nonzero(quick_start: Path) -> None:
    for args in (["subscribers", "list"], ["check"], ["preview", "--papers", "sample"]):
        result = newsletter(*args, "--subscribers", "nobody.yaml", cwd=quick_start)
        assert result.returncode == 1, (args, result.stderr)
        assert "error: nobody.yaml: no such subscribers file; check --subscribers" in result.stderr
    assert not (quick_start / "preview").exists()  # refused before anything was written


def test_check_reads_the_given_subscribers_file(tmp_path: Path) -> None:
    shutil.copy(REPO / EXAMPLE, tmp_path / EXAMPLE)
    good = run("check", "--subscribers", EXAMPLE, cwd=tmp_path)
    assert good.returncode == 0, good.stderr
    assert "does not exist" not in good.stderr  # the given file, not subscribers.yaml
    (tmp_path / "bad.yaml").write_text("- email: ann@example.org\n  topics: [Cooking]\n")
    bad = run("check", "--subscribers", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 1
    assert "bad.yaml: line 2: ann@example.org: unknown topic 'Cooking'" in bad.stderr


def test_preview_says_who_the_issue_would_reach(tmp_path: Path) -> None:
    shutil.copy(REPO / EXAMPLE, tmp_path / EXAMPLE)
    result = run("preview", "--papers", "sample", "--subscribers", EXAMPLE, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.strip().splitlines()
    # alice and dave get every topic, bob two topics, carol one topic as text: three variants
    assert lines[-2] == (
        f"audience: 4 subscriber(s) from {EXAMPLE} and the state get 3 variant(s), "
        "0 with nothing this week; nothing was sent"
    )
    assert lines[-1].startswith("preview: issue ")
    assert not (tmp_path / "newsletter.db").exists()  # a look creates no state
