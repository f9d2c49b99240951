from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path

import pytest

from newsletter.config import load_config
from newsletter.errors import NewsletterError
from newsletter.job import is_fully_sent, plan_issue, run_weekly, send_issue
from newsletter.models import Paper
from newsletter.store.state import Store
from newsletter.topics import build_issue
from tests.support.paths import DATA
from tests.support.smtp_server import SmtpServer

SAMPLE = str(DATA / "samples" / "daily-papers-page.txt")
HF = str(DATA / "samples" / "hf-daily-papers-api.json")
NOW = datetime(2026, 11, 23, 8, tzinfo=timezone.utc)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-for-links")
    (tmp_path / "config.yaml").write_text(
        "base_url: https://papers.example.org\n"
        "sender: {name: Weekly Papers, address: digest@papers.example.org}\n"
        "delivery: {transport: outbox, outbox: out/}\n"
    )
    (tmp_path / "subscribers.yaml").write_text(
        "- email: alice@example.org\n"
        "- email: bob@example.com\n  topics: [LLM Reasoning]\n"
        "- email: carol@example.org\n  format: text\n"
        "- email: broken@\n"
    )
    return tmp_path


def outbox(site: Path) -> list:
    # the files as written (mailbox.Maildir would re-fold long headers on the way out)
    return [
        message_from_bytes(path.read_bytes(), policy=default)
        for path in sorted((site / "out" / "new").glob("*"))
    ]


def test_run_delivers_once_and_a_rerun_sends_nothing(site: Path) -> None:
    config = load_config(site / "config.yaml")
    first = run_weekly(config, [SAMPLE], now=NOW)
    assert first.issue.id == "2026-W48" and not first.reused
    assert (first.report.sent, first.report.failed) == (3, 0)
    assert first.subscriber_problems and "broken@" in first.subscriber_problems[0]
    messages = outbox(site)
    assert sorted(m["To"] for m in messages) == [
        "alice@example.org",
        "bob@example.com",
        "carol@example.org",
    ]
    assert all(m["List-Unsubscribe"].startswith("<https://papers.example.org/") for m in messages)
    bob = next(m for m in messages if m["To"] == "bob@example.com")
    assert "LLM Reasoning" in bob.get_body(("plain",)).get_content()
    assert "Diffusion & Image Generation" not in bob.get_body(("plain",)).get_content()

    again = run_weekly(config, [SAMPLE], now=NOW)
    assert again.reused and again.report.sent == 0 and again.report.already_sent == 3
    assert len(outbox(site)) == 3
    assert is_fully_sent(config, "2026-W48")
    assert "3 sent before" in again.summary()


def test_next_issue_leaves_out_papers_sent_before(site: Path) -> None:
    config = load_config(site / "config.yaml")
    first = run_weekly(config, [SAMPLE], now=NOW)
    second = run_weekly(config, [SAMPLE, HF], issue_id="2026-W49", now=NOW)
    first_ids = {p.id for p in first.issue.papers}
    second_ids = {p.id for p in second.issue.papers}
    assert not first_ids & second_ids
    assert second.issue.paper_count == 30  # only the HF papers are new


def test_dry_run_sends_and_archives_nothing(site: Path) -> None:
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [SAMPLE], now=NOW, dry_run=True)
    assert result.report is None and result.audience == 3
    assert "dry run" in result.summary()
    assert not (site / "out").exists() or not outbox(site)
    with Store.from_settings(config.state_settings()) as store:
        assert store.archive.get_issue("2026-W48") is None


def test_send_resumes_an_archived_issue_and_refuses_an_unknown_one(site: Path) -> None:
    config = load_config(site / "config.yaml")
    (site / "nobody.yaml").write_text("[]\n")
    run_weekly(config, [SAMPLE], now=NOW, subscribers=site / "nobody.yaml")
    assert outbox(site) == [] if (site / "out").exists() else True
    resumed = send_issue(config, "2026-W48")
    assert resumed.report.sent == 3
    with pytest.raises(NewsletterError, match="issue 2031-W01 is not in the archive"):
        send_issue(config, "2031-W01")


def test_a_missing_subscribers_file_given_explicitly_is_an_error(site: Path) -> None:
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError, match=r"typo\.yaml: no such subscribers file"):
        run_weekly(config, [SAMPLE], now=NOW, subscribers=site / "typo.yaml")
    with Store.from_settings(config.state_settings()) as store:
        assert store.archive.get_issue("2026-W48") is None  # nothing archived on the way


def test_an_issue_without_papers_sends_nothing_and_is_not_archived(site: Path) -> None:
    config = load_config(site / "config.yaml")
    run_weekly(config, [SAMPLE], now=NOW)
    # a week later, the same papers again: all were sent, so the new issue is empty
    later = run_weekly(config, [SAMPLE], issue_id="2026-W49", now=NOW)
    assert later.empty and later.report is None and later.ok
    assert later.summary().endswith("no papers, nothing sent")
    assert len(outbox(site)) == 3
    with Store.from_settings(config.state_settings()) as store:
        assert store.archive.get_issue("2026-W49") is None


def test_a_second_send_on_the_same_state_refuses_while_one_runs(site: Path) -> None:
    from newsletter.store.locks import send_lock

    config = load_config(site / "config.yaml")
    with (
        send_lock(config.state_settings()),
        pytest.raises(NewsletterError, match="another send .* is working"),
    ):
        run_weekly(config, [SAMPLE], now=NOW)
    assert not (site / "out").exists() or outbox(site) == []


def test_preview_shows_what_the_run_would_send(site: Path) -> None:
    from newsletter.preview.files import write_preview

    config = load_config(site / "config.yaml")
    before = write_preview(config, read(SAMPLE), site / "p1", now=NOW, issue_id="2026-W49")
    assert before.paper_count == 83
    assert not (site / "newsletter.db").exists()  # a preview creates no state
    run_weekly(config, [SAMPLE], now=NOW)
    after = write_preview(config, read(SAMPLE), site / "p2", now=NOW, issue_id="2026-W49")
    assert after.paper_count == 0  # every paper went out in 2026-W48
    archived = write_preview(config, read(HF), site / "p3", now=NOW)  # this week: the archive
    assert archived.issue_id == "2026-W48" and archived.paper_count == 83


def read(source: str):
    from newsletter.sources import read_source

    return read_source(source)


def test_a_broken_subscribers_file_stops_the_run_before_anything_is_archived(site: Path) -> None:
    (site / "subscribers.yaml").write_text("- email: [unclosed\n")
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError, match=r"subscribers\.yaml"):
        run_weekly(config, [SAMPLE], now=NOW)
    with Store.from_settings(config.state_settings()) as store:
        assert store.archive.get_issue("2026-W48") is None
    assert not is_fully_sent(config, "2026-W48")


def test_an_issue_that_reached_no_one_is_not_fully_sent(site: Path) -> None:
    (site / "subscribers.yaml").write_text("[]\n")
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [SAMPLE], now=NOW)
    assert result.audience == 0 and result.report.sent == 0
    assert not is_fully_sent(config, "2026-W48")  # a later start of the scheduler catches up


def test_the_scheduler_waits_for_another_send_instead_of_losing_its_run(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import newsletter.store.locks
    from newsletter.store.locks import send_lock

    monkeypatch.setattr(newsletter.store.locks, "RETRY_SECONDS", 0.05)
    config = load_config(site / "config.yaml")
    held, release = threading.Event(), threading.Event()

    def other_send() -> None:
        with send_lock(config.state_settings()):
            held.set()
            release.wait(10)

    other = threading.Thread(target=other_send)
    other.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    result = run_weekly(config, [SAMPLE], now=NOW, wait_for_send=True, stop=threading.Event())
    other.join()
    assert result.report.sent == 3

    # asked to stop while waiting: it gives up with the same clear line
    stop = threading.Event()
    with send_lock(config.state_settings()):
        threading.Timer(0.2, stop.set).start()
        with pytest.raises(NewsletterError, match="another send"):
            run_weekly(config, [SAMPLE], now=NOW, wait_for_send=True, stop=stop)


# -- hostile papers: control characters and links that are not http(s) ----------------------------


def hostile_hf_api(folder: Path) -> Path:
    """The HF API sample with the reproductions of the hardening report folded in."""
    items = json.loads(Path(HF).read_text(encoding="utf-8"))
    items[0]["paper"]["title"] += "\b(revised)"
    items[1]["paper"]["ai_summary"] = "A summary with a NUL\x00 and an ESC\x1b[31m in it."
    items[2]["paper"]["authors"][0]["name"] = "Ada\x1b Lovelace"
    items[3]["paper"]["projectPage"] = "javascript:alert(document.domain)//"
    items[4]["paper"]["githubRepo"] = "data:text/html,<script>alert(1)</script>"
    items[5]["paper"]["githubRepo"] = "https://github.com/\x1bexample/co\x00de"
    path = folder / "hostile-api.json"
    path.write_text(json.dumps(items), encoding="utf-8")
    return path


def hrefs_and_text(message: Message) -> tuple[list[str], str]:
    html = message.get_body(("html",))
    text = message.get_body(("plain",))
    links = re.findall(r'href="([^"]*)"', html.get_content()) if html is not None else []
    return links, text.get_content() if text is not None else ""


def test_control_characters_in_a_paper_no_longer_block_the_week(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # every paper in the email (no per-topic cap), so each hostile one is read back
    (site / "config.yaml").write_text(
        (site / "config.yaml").read_text() + "max_per_topic: null\nmax_papers: null\n"
    )
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [str(hostile_hf_api(site))], now=NOW)
    assert (result.report.sent, result.report.failed) == (3, 0)
    messages = outbox(site)
    alice = next(m for m in messages if m["To"] == "alice@example.org")
    _, text = hrefs_and_text(alice)
    title = json.loads(Path(HF).read_text(encoding="utf-8"))[0]["paper"]["title"]
    assert " ".join(f"{title}(revised)".split()) in " ".join(text.split())
    assert "A summary with a NUL and an ESC[31m in it." in " ".join(text.split())
    assert "https://github.com/example/code" in text
    for message in messages:
        for part in message.walk():
            if part.get_content_maintype() == "text":
                assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", part.get_content())


def test_only_http_links_from_sources_reach_the_email(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    papers = site / "papers.json"
    papers.write_text(
        json.dumps(
            [
                {"title": "Plain javascript", "url": "javascript:alert(4)"},
                {"title": "A data link", "url": "data:text/html,<b>x</b>", "code_url": "ftp://x"},
                {"title": "Fine", "url": "https://example.org/fine"},
            ]
        ),
        encoding="utf-8",
    )
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [str(papers), str(hostile_hf_api(site))], now=NOW)
    assert result.report.sent == 3
    for message in outbox(site):
        links, text = hrefs_and_text(message)
        assert all(link.startswith(("https://", "http://", "#")) for link in links), links
        assert "javascript:" not in text and "data:" not in text
    alice = next(m for m in outbox(site) if m["To"] == "alice@example.org")
    assert "https://example.org/fine" in hrefs_and_text(alice)[0]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for title in ("Plain javascript", "A data link"):
        assert any(f"'{title}'" in line and "only http and https" in line for line in warned)
    assert any("project_url" in line and "javascript:" in line for line in warned), warned


# -- a run checks what it can before it writes anything --------------------------------------------


def nothing_written(config) -> None:
    """The archive, the ledger and the papers recorded as sent are as a fresh state has them."""
    with Store.from_settings(config.state_settings()) as store:
        assert store.archive.list_issues() == []
        assert store.archive.sent_paper_ids() == set()
        assert store.ledger.counts("2026-W48") == dict.fromkeys(
            ("pending", "sent", "failed", "skipped"), 0
        )


BREAKAGES = {
    "no key": ("", "NEWSLETTER_SECRET_KEY is not set"),
    "broken template": ("templates_dir: tpl\n", r"paper\.mjml:1: .*"),
    "MJML that does not compile": ("templates_dir: mj\n", r"MJML does not compile"),
    "a header that cannot be written": (
        "unsubscribe_mailto: 'leave here@example.org'\n",
        r"unsubscribe_mailto 'leave here@example\.org': not a usable address",
    ),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_a_run_that_cannot_send_writes_nothing(
    site: Path, monkeypatch: pytest.MonkeyPatch, breakage: str
) -> None:
    extra, message = BREAKAGES[breakage]
    (site / "tpl").mkdir()
    (site / "tpl" / "paper.mjml").write_text("{% if %}\n")
    (site / "mj").mkdir()
    (site / "mj" / "section.mjml").write_text("<mj-section><mj-column>\n")
    if breakage == "no key":
        monkeypatch.delenv("NEWSLETTER_SECRET_KEY")
    with (site / "config.yaml").open("a") as f:
        f.write(extra)
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError, match=message):
        run_weekly(config, [SAMPLE], now=NOW)
    nothing_written(config)
    assert not (site / "out").exists()


def test_after_a_failed_run_the_next_one_builds_the_issue_anew(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY")
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError):
        run_weekly(config, [SAMPLE], now=NOW)
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "test-secret-key-for-links")
    result = run_weekly(config, [HF], now=NOW)  # other papers: a new issue, not a resumed one
    assert not result.reused and result.issue.paper_count == 30
    assert result.report.sent == 3


def test_a_run_over_smtp_warns_about_links_mail_providers_refuse(
    site: Path, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    (site / "config.yaml").write_text(
        "sender: {address: digest@papers.example.org}\n"
        f"delivery: {{transport: smtp, smtp: {{host: 127.0.0.1, port: {smtp.port}, "
        "security: none}}\n"
    )
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [SAMPLE], now=NOW)
    assert result.report.sent == 3  # a warning, not a stop
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("base_url: http://localhost:8000 is not https" in w for w in warned), warned
    assert any("is a loopback address" in w for w in warned), warned
    assert any("postal_address: the footer shows no postal address" in w for w in warned)


def test_a_new_issue_weighs_its_keywords_against_the_archive(tmp_path: Path) -> None:
    # Two made-up words no paper of the bundled table uses: alone they weigh the same, and a
    # paper with one of each goes to the topic listed first. Once the archive holds forty papers
    # that say "zorbic", that word says less, and the paper goes to the other topic.
    (tmp_path / "config.yaml").write_text(
        "topics:\n  - name: Zorbic\n    keywords: [zorbic]\n"
        "  - name: Quellan\n    keywords: [quellan]\n"
    )
    config = load_config(tmp_path / "config.yaml")
    fresh = [Paper("2611.09999", "Zorbic quellan coupling")]
    old = [Paper(f"2610.{n:05d}", f"Zorbic study {n}") for n in range(40)]

    def section_of(store: Store | None) -> str:
        issue, _ = plan_issue(config, store, lambda: fresh, issue_id="2026-W48", now=NOW)
        return issue.sections[0].topic

    with Store.open(tmp_path / "state.db") as store:
        assert section_of(store) == "Zorbic"  # an empty archive
        past = build_issue(old, config.issue_settings(), issue_id="2026-W47", use_window=False)
        store.archive.save_issue(past)
        assert section_of(store) == "Quellan"
    assert section_of(None) == "Zorbic"
