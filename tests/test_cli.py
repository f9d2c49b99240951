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

from newsletter.cli import cli

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real `python -m newsletter` process, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NEWSLETTER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env=env,
        timeout=120,
    )


def all_commands(group: click.Group, prefix: str = "newsletter") -> list[str]:
    names = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if isinstance(command, click.Group):
            names.extend(all_commands(command, path))
        else:
            names.append(path)
    return names


def test_every_command_is_documented_in_the_readme_and_has_help():
    readme = (REPO / "README.md").read_text()
    commands = all_commands(cli)
    assert len(commands) >= 6
    for command in commands:
        assert re.search(rf"`{re.escape(command)}\b", readme), f"{command} missing from README"
        args = command.split()[1:]
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path):
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


def test_papers_json_lists_the_sample(tmp_path: Path):
    result = run("papers", str(DATA / "samples" / "daily-papers-page.txt"), "--format", "json")
    assert result.returncode == 0, result.stderr
    papers = json.loads(result.stdout)
    assert len(papers) == 83
    assert (
        papers[0]["title"] == "Improved Distribution Matching Distillation for Fast Image Synthesis"
    )
    assert result.stderr.strip().splitlines()[-1] == "83 papers from 1 source(s)"


def test_papers_of_a_missing_file_is_one_line_and_nonzero(tmp_path: Path):
    result = run("papers", str(tmp_path / "missing.json"))
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "missing.json" in result.stderr


def test_topics_assign_json_has_the_documented_fields():
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
        assert item["matched"] and {"keyword", "field", "count"} <= set(item["matched"][0])
    assert result.stderr.strip().splitlines()[-1].startswith("30 papers: ")


def test_topics_explain_names_the_rule_and_runner_up():
    sample = str(DATA / "samples" / "daily-papers-page.txt")
    title = "Improved Distribution Matching Distillation for Fast Image Synthesis"
    result = run("topics", "explain", title, sample)
    assert result.returncode == 0, result.stderr
    assert title in result.stdout
    assert "runner-up" in result.stdout.lower()


def test_topics_explain_unknown_paper_is_an_error():
    result = run("topics", "explain", "9999.99999", str(DATA / "samples" / "daily-papers-page.txt"))
    assert result.returncode == 1
    assert "no paper with id or title '9999.99999'" in result.stderr


@pytest.mark.parametrize("args", [["--version"], ["--help"]])
def test_python_dash_m_works(args: list[str]):
    result = run(*args)
    assert result.returncode == 0 and "newsletter" in result.stdout.lower()
