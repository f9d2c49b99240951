"""`newsletter init`: a working digest folder, never over an existing file, never half-made."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from newsletter.cli.options import read_secrets_file
from newsletter.cli.scaffold import make_folder
from newsletter.config import load_config
from newsletter.errors import AlreadyExistsError, WriteError
from tests.support.cli import newsletter
from tests.support.paths import REPO

FILES = {"config.yaml", "subscribers.yaml", "secrets.env", ".gitignore"}


def test_init_then_check_and_run_from_inside_the_folder(tmp_path: Path) -> None:
    made = newsletter("init", "site", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site"
    assert {p.name for p in site.iterdir()} == FILES
    steps = [line for line in made.stdout.splitlines() if line.startswith("  ")]
    assert [s.split(".")[0].strip() for s in steps] == ["1", "2", "3"]
    assert "cd site, then edit config.yaml" in steps[0]
    assert "newsletter check --production" in steps[2]
    assert made.stderr.strip() == "init: 4 files written in site"

    secrets = site / "secrets.env"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    key = [line for line in secrets.read_text().splitlines() if line.startswith("NEWSLETTER_")]
    assert len(key) == 1 and len(key[0].split("=", 1)[1]) >= 43
    assert key[0].split("=", 1)[1] not in made.stdout + made.stderr  # never printed

    # no NEWSLETTER_CONFIG, no exported key: ./config.yaml and ./secrets.env are found
    checked = newsletter("check", cwd=site)
    assert checked.returncode == 0, checked.stderr
    assert "error" not in checked.stderr.lower()
    # the postal line is the operator's to write: a warning until then, not an error
    assert checked.stderr.strip().splitlines()[-1] == (
        f"check: 0 problem(s), 1 warning(s) in {site.resolve()}/config.yaml"
    )
    assert "warning: postal_address:" in checked.stderr
    listed = newsletter("subscribers", "list", cwd=site)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.strip().startswith("subscribers: 4 receive the next issue")
    sent = newsletter("run", "--papers", "sample", cwd=site)
    assert sent.returncode == 0, sent.stderr
    assert ", 4 subscribers; 4 sent, 0 failed" in sent.stderr
    assert len(list((site / "outbox" / "new").iterdir())) == 4


def test_the_gitignore_keeps_secrets_and_state_out_of_git(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.fail("git is needed for this test")
    make_folder(tmp_path / "site")
    site = tmp_path / "site"
    for name in ("newsletter.db", "newsletter.db-wal", "newsletter.db.send.lock", "key.pem"):
        (site / name).write_text("x")
    (site / "outbox" / "new").mkdir(parents=True)
    (site / "outbox" / "new" / "1.eml").write_text("x")
    subprocess.run(["git", "init", "-q", str(site)], check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=site,
        capture_output=True,
        text=True,
        check=True,
    )
    tracked = sorted(line[3:] for line in status.stdout.splitlines())
    assert tracked == [".gitignore", "config.yaml", "subscribers.yaml"]


def test_init_refuses_to_overwrite_and_names_the_file(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "subscribers.yaml").write_text("- email: mine@example.org\n")
    result = newsletter("init", "site", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {Path('site') / 'subscribers.yaml'} exists already; init never overwrites: "
        "choose another folder, or move the file away"
    ]
    assert {p.name for p in site.iterdir()} == {"subscribers.yaml"}
    assert (site / "subscribers.yaml").read_text() == "- email: mine@example.org\n"


def test_init_into_an_existing_folder_adds_its_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = newsletter("init", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {p.name for p in tmp_path.iterdir()} == FILES | {"notes.txt"}
    assert "1. edit config.yaml" in result.stdout  # no `cd` when it is the current folder


def test_a_failure_in_an_existing_folder_leaves_it_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    real_link = os.link
    calls: list[str] = []

    def failing_link(src: str | Path, dst: str | Path) -> None:
        calls.append(str(dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", failing_link)
    with pytest.raises(WriteError, match="cannot write .*No space left on device.*nothing was"):
        make_folder(tmp_path)
    assert len(calls) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_a_failure_in_a_new_folder_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_rename(src: str | Path, dst: str | Path) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(WriteError, match="Permission denied"):
        make_folder(tmp_path / "site")
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_appears_meanwhile_is_not_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_link = os.link

    def racing_link(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "secrets.env":
            Path(dst).write_text("someone else's\n")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(AlreadyExistsError, match="secrets.env appeared while init ran"):
        make_folder(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.env"]
    assert (tmp_path / "secrets.env").read_text() == "someone else's\n"


def test_the_made_config_is_commented_and_carries_the_default_topics(tmp_path: Path) -> None:
    make_folder(tmp_path / "site")
    text = (tmp_path / "site" / "config.yaml").read_text()
    config = load_config(tmp_path / "site" / "config.yaml")
    bundled = load_config(REPO / "config.yaml")
    assert config.topic_names == bundled.topic_names
    assert config.postal_address is None and config.base_url == "http://localhost:8000"
    assert "\n# dkim: {domain: " in text  # signing, ready to uncomment
    for key in ("base_url:", "postal_address:", "sender:", "delivery:"):
        line = next(i for i, t in enumerate(text.splitlines()) if t.startswith(key))
        assert text.splitlines()[line - 1].startswith("#"), f"{key} has no comment above it"


def test_the_secrets_file_fills_only_what_the_environment_lacks(tmp_path: Path) -> None:
    path = tmp_path / "secrets.env"
    path.write_text(
        "# a comment\nNEWSLETTER_SECRET_KEY=from-the-file\n"
        'NEWSLETTER_SMTP_PASSWORD="quoted value"\nEMPTY=\n'
    )
    environ = {"NEWSLETTER_SECRET_KEY": "from-the-environment"}
    assert read_secrets_file(path, environ) == ["NEWSLETTER_SMTP_PASSWORD"]
    assert environ == {
        "NEWSLETTER_SECRET_KEY": "from-the-environment",
        "NEWSLETTER_SMTP_PASSWORD": "quoted value",
    }
    assert read_secrets_file(tmp_path / "missing.env", environ) == []
