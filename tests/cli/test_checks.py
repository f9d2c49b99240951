from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.cli.checks import run_checks
from newsletter.config import load_config

TOPICS = "topics: [{name: Vision, keywords: [image]}]\n"


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "a-secret-that-is-long-enough")
    monkeypatch.delenv("NEWSLETTER_SMTP_PASSWORD", raising=False)


def config_at(tmp_path: Path, text: str):
    (tmp_path / "config.yaml").write_text(text + TOPICS)
    return load_config(tmp_path / "config.yaml")


def test_a_sound_setup_has_no_problems(tmp_path: Path) -> None:
    (tmp_path / "papers.json").write_text('[{"title": "A"}]')
    (tmp_path / "subscribers.yaml").write_text("- email: ann@example.org\n")
    assert run_checks(config_at(tmp_path, "sources: [papers.json]\n")) == []


def test_every_problem_is_listed_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY")
    (tmp_path / "subscribers.yaml").write_text(
        "- email: ann@example.org\n  topics: [Visoin]\n- email: bob@\n"
    )
    config = config_at(
        tmp_path,
        "sources: [missing.jsonl]\n"
        "dkim: {domain: example.org, selector: s1, key_path: nokey.pem}\n"
        "delivery: {transport: smtp, smtp: {host: localhost, username: digest}}\n",
    )
    problems = run_checks(config)
    text = "\n".join(problems)
    assert len(problems) == 6, text
    assert f"sources[0].file: {tmp_path / 'missing.jsonl'}: no such file" in text
    assert "subscribers.yaml: line 2: ann@example.org: unknown topic 'Visoin'" in text
    assert "subscribers.yaml: line 3: 'bob@' is not a valid address" in text
    assert "environment: NEWSLETTER_SECRET_KEY is not set" in text
    assert "environment: NEWSLETTER_SMTP_PASSWORD is not set" in text
    assert f"dkim.key_path: {tmp_path / 'nokey.pem'}: cannot read the private key" in text


def test_a_broken_template_override_is_named(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "paper.mjml").write_text("{% if %}\n")
    problems = run_checks(config_at(tmp_path, "templates_dir: tpl\n"))
    assert len(problems) == 1 and "paper.mjml" in problems[0]
    problems = run_checks(config_at(tmp_path, "templates_dir: nowhere\n"))
    assert problems == [f"templates_dir: {tmp_path / 'nowhere'}: no such folder"]


def test_a_missing_subscribers_file_is_a_warning_not_a_problem(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_checks(config_at(tmp_path, "")) == []
    assert "subscribers.yaml does not exist; only web and imported subscribers" in caplog.text


def test_check_catches_a_title_with_a_line_break(tmp_path: Path) -> None:
    from newsletter.errors import ConfigError

    (tmp_path / "config.yaml").write_text('title: "Weekly\\r\\nBcc: victim@example.org"\n' + TOPICS)
    with pytest.raises(ConfigError, match=r"config\.yaml: title: .*one line.*\(line 1\)"):
        load_config(tmp_path / "config.yaml")


def test_check_warns_about_links_mail_providers_refuse_and_a_footer_without_address(
    tmp_path: Path,
) -> None:
    from newsletter.preflight import setup_warnings

    smtp = "delivery: {transport: smtp, smtp: {host: localhost}}\n"
    warnings = setup_warnings(config_at(tmp_path, smtp))  # the default base_url
    text = "\n".join(warnings)
    assert "base_url: http://localhost:8000 is not https" in text
    assert "loopback" in text
    assert "postal_address: the footer shows no postal address" in text
    fine = "base_url: https://news.example.org\npostal_address: Lab, 1 Main St, Springfield\n"
    assert setup_warnings(config_at(tmp_path, smtp + fine)) == []
    # the outbox is for trying things out: localhost links are what it is for
    outbox = "postal_address: Lab, 1 Main St, Springfield\n"
    assert setup_warnings(config_at(tmp_path, outbox)) == []
    [footer] = setup_warnings(config_at(tmp_path, ""))
    assert footer.startswith("postal_address: the footer shows no postal address")
