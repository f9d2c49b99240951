"""The MJML our templates produce passes the reference validator (npm `mjml --validate`).

`mjml-python` only rejects malformed XML; the reference validator also knows which component
may sit where and which attributes are valid. CI installs it with `npm ci` (package-lock.json).
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from newsletter import resources
from newsletter.config import Config, parse_config
from newsletter.errors import RenderError
from newsletter.models import Issue
from newsletter.render import renderer as render
from newsletter.render import validate as mjml_validate
from newsletter.render.context import Plan, build_context
from newsletter.sources import read_source
from newsletter.topics.issue import build_issue
from tests.support.paths import SAMPLES

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
HF_API = SAMPLES / "hf-daily-papers-api.json"
BROKEN = """\
<mjml>
  <mj-body>
    <mj-section>
      <mj-text>A text straight in a section, outside any column</mj-text>
      <mj-column>
        <mj-fancy-box>An element MJML does not have</mj-fancy-box>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""


@pytest.fixture(scope="module")
def validator() -> Path:
    found = mjml_validate.find_validator()
    if found is None:
        pytest.fail(
            "the reference MJML validator is missing (node and node_modules/.bin/mjml): run "
            "`npm ci` at the top of the checkout (scripts/install-test-deps does it)"
        )
    return found


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    tmp = tmp_path_factory.mktemp("mjml")
    return parse_config(resources.default_config_text(), "config.yaml", tmp)


def issue_mjml(issue: Issue, config: Config, *, capped: bool = False) -> str:
    """The MJML source `render_issue` compiles: the templates rendered with the issue's context."""
    caps = tuple(len(s.papers) for s in issue.sections)
    if capped:  # show one paper fewer per section, so the "+N more" links are in the markup too
        caps = tuple(max(0, c - 1) for c in caps)
    links = {
        "unsubscribe": render.UNSUBSCRIBE_PLACEHOLDER,
        "preferences": render.PREFERENCES_PLACEHOLDER,
    }
    context = build_context(
        issue, issue.sections, config.render_settings(), Plan(config.summary_chars, caps), links
    )
    return render.environment(config).get_template(render.HTML_TEMPLATE).render(context)


def run_validator(validator: Path, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(validator), "--validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("source", ["sample", "hf-api"])
@pytest.mark.parametrize("capped", [False, True], ids=["all-papers", "capped"])
def test_issue_mjml_passes_the_reference_validator(
    validator: Path, config: Config, tmp_path: Path, source: str, capped: bool
) -> None:
    papers = read_source("sample" if source == "sample" else str(HF_API))
    issue = build_issue(papers, config.issue_settings(), now=NOW, use_window=False)
    mjml = issue_mjml(issue, config, capped=capped)
    assert mjml.lstrip().startswith("<mjml")
    path = tmp_path / "email.mjml"
    path.write_text(mjml, encoding="utf-8")

    proc = run_validator(validator, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert mjml_validate.validate_mjml(mjml, validator=validator) == []


def test_the_validator_rejects_misplaced_and_unknown_tags(validator: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.mjml"
    path.write_text(BROKEN, encoding="utf-8")
    assert run_validator(validator, path).returncode != 0

    problems = mjml_validate.validate_mjml(BROKEN, name="broken.mjml", validator=validator)
    assert any(p.startswith("broken.mjml:4: <mj-text> ") for p in problems), problems
    assert any(p.startswith("broken.mjml:6: <mj-fancy-box> ") for p in problems), problems
    assert len(problems) == 2, problems


def test_mjml_python_alone_lets_the_broken_markup_through() -> None:
    # Why the reference validator is worth running: the compiler we ship does not object.
    html = render.compile_mjml(BROKEN, "broken.mjml")
    assert "<html" in html


def test_a_missing_validator_is_an_error_that_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mjml_validate, "find_validator", lambda: None)
    with pytest.raises(RenderError, match=r"npm ci"):
        mjml_validate.validate_mjml(BROKEN)
