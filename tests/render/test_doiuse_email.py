"""The sample email against caniemail.com's data, with `doiuse-email` (npm, see package.json).

No error for Gmail (desktop webmail, iOS, Android), Apple Mail (macOS, iOS) and Outlook for macOS
beyond the features allowed below, each with the reason it is safe where it is not supported.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter import resources
from newsletter.config import parse_config
from newsletter.preview.links import example_links, fill
from newsletter.render.renderer import render_issue
from newsletter.sources import read_source
from newsletter.topics.issue import build_issue
from tests.support.paths import REPO

CLI = REPO / "node_modules" / "doiuse-email" / "bin" / "cli.js"
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
CLIENTS = [
    "gmail.desktop-webmail",
    "gmail.ios",
    "gmail.android",
    "apple-mail.macos",
    "apple-mail.ios",
    "outlook.macos",
]
ALLOWED = {
    "overflow-wrap": (
        "a progressive enhancement for long words and URLs on narrow screens: the same cards "
        "also carry `word-break: break-word`, and where neither applies a long word only wraps "
        "later, the layout stays one 600 px column"
    ),
}
ERROR = re.compile(r"^`([^`]+)` is not supported by `([^`]+)`$")


def doiuse(html_path: Path) -> dict[str, list[str]]:
    node = shutil.which("node")
    if node is None or not CLI.is_file():
        pytest.fail(
            "doiuse-email is not installed: run `npm ci` (scripts/install-test-deps does it)"
        )
    proc = subprocess.run(
        [node, str(CLI), "--email-clients", ",".join(CLIENTS), str(html_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, list[str]] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("doiuse")
    config = parse_config(resources.default_config_text(), "config.yaml", folder)
    issue = build_issue(
        read_source("sample", now=NOW), config.issue_settings(), now=NOW, use_window=False
    )
    rendered = render_issue(issue, config.render_settings())
    path = folder / "email.html"
    path.write_text(fill(rendered.html, example_links(config), as_html=True), encoding="utf-8")
    return doiuse(path)


def test_no_unsupported_feature_beyond_the_allow_list(report: dict[str, list[str]]) -> None:
    found = [ERROR.match(e) for e in report["errors"]]
    assert all(found), [e for e, m in zip(report["errors"], found, strict=True) if not m]
    pairs = zip(report["errors"], found, strict=True)
    unexpected = sorted({e for e, m in pairs if m and m[1] not in ALLOWED})
    assert unexpected == [], "\n".join(unexpected)


def test_every_allowed_feature_is_still_used_and_has_a_reason(
    report: dict[str, list[str]],
) -> None:
    # An entry nothing needs any more must go, so the list never hides a new problem.
    used = {m[1] for e in report["errors"] if (m := ERROR.match(e))}
    assert set(ALLOWED) <= used, set(ALLOWED) - used


def test_the_check_sees_what_clients_miss(tmp_path: Path) -> None:
    # The tool does report a feature these clients lack, so a clean report means something.
    html = '<!doctype html><html><body><div style="position: fixed">x</div></body></html>'
    (tmp_path / "bad.html").write_text(html, encoding="utf-8")
    errors = doiuse(tmp_path / "bad.html")["errors"]
    assert "`position` is not supported by `gmail.ios`" in errors
