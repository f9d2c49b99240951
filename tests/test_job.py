from __future__ import annotations

from datetime import datetime, timezone
from email import message_from_bytes
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


def test_run_delivers_once_and_a_rerun_sends_nothing(site: Path):
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


def test_next_issue_leaves_out_papers_sent_before(site: Path):
    config = load_config(site / "config.yaml")
    first = run_weekly(config, [SAMPLE], now=NOW)
    second = run_weekly(config, [SAMPLE, HF], issue_id="2026-W49", now=NOW)
    first_ids = {p.id for p in first.issue.papers}
    second_ids = {p.id for p in second.issue.papers}
    assert not first_ids & second_ids
    assert second.issue.paper_count == 30  # only the HF papers are new


def test_dry_run_sends_and_archives_nothing(site: Path):
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [SAMPLE], now=NOW, dry_run=True)
    assert result.report is None and result.audience == 3
    assert "dry run" in result.summary()
    assert not (site / "out").exists() or not outbox(site)
    with Store.from_config(config) as store:
        assert store.get_issue("2026-W48") is None


def test_send_resumes_an_archived_issue_and_refuses_an_unknown_one(site: Path):
    config = load_config(site / "config.yaml")
    (site / "nobody.yaml").write_text("[]\n")
    run_weekly(config, [SAMPLE], now=NOW, subscribers=site / "nobody.yaml")
    assert outbox(site) == [] if (site / "out").exists() else True
    resumed = send_issue(config, "2026-W48")
    assert resumed.report.sent == 3
    with pytest.raises(NewsletterError, match="issue 2031-W01 is not in the archive"):
        send_issue(config, "2031-W01")


def test_a_missing_subscribers_file_given_explicitly_is_an_error(site: Path):
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError, match=r"typo\.yaml: no such subscribers file"):
        run_weekly(config, [SAMPLE], now=NOW, subscribers=site / "typo.yaml")
    with Store.from_config(config) as store:
        assert store.get_issue("2026-W48") is None  # nothing archived on the way


def test_an_issue_without_papers_sends_nothing_and_is_not_archived(site: Path):
    config = load_config(site / "config.yaml")
    run_weekly(config, [SAMPLE], now=NOW)
    # a week later, the same papers again: all were sent, so the new issue is empty
    later = run_weekly(config, [SAMPLE], issue_id="2026-W49", now=NOW)
    assert later.empty and later.report is None and later.ok
    assert later.summary().endswith("no papers, nothing sent")
    assert len(outbox(site)) == 3
    with Store.from_config(config) as store:
        assert store.get_issue("2026-W49") is None


def test_a_second_send_on_the_same_state_refuses_while_one_runs(site: Path):
    from newsletter.store.locks import send_lock

    config = load_config(site / "config.yaml")
    with send_lock(config), pytest.raises(NewsletterError, match="another send .* is working"):
        run_weekly(config, [SAMPLE], now=NOW)
    assert not (site / "out").exists() or outbox(site) == []


def test_preview_shows_what_the_run_would_send(site: Path):
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


def test_a_broken_subscribers_file_stops_the_run_before_anything_is_archived(site: Path):
    (site / "subscribers.yaml").write_text("- email: [unclosed\n")
    config = load_config(site / "config.yaml")
    with pytest.raises(NewsletterError, match=r"subscribers\.yaml"):
        run_weekly(config, [SAMPLE], now=NOW)
    with Store.from_config(config) as store:
        assert store.get_issue("2026-W48") is None
    assert not is_fully_sent(config, "2026-W48")


def test_an_issue_that_reached_no_one_is_not_fully_sent(site: Path):
    (site / "subscribers.yaml").write_text("[]\n")
    config = load_config(site / "config.yaml")
    result = run_weekly(config, [SAMPLE], now=NOW)
    assert result.audience == 0 and result.report.sent == 0
    assert not is_fully_sent(config, "2026-W48")  # a later start of the scheduler catches up


def test_the_scheduler_waits_for_another_send_instead_of_losing_its_run(
    site: Path, monkeypatch: pytest.MonkeyPatch
):
    import threading

    import newsletter.store.locks
    from newsletter.store.locks import send_lock

    monkeypatch.setattr(newsletter.store.locks, "RETRY_SECONDS", 0.05)
    config = load_config(site / "config.yaml")
    held, release = threading.Event(), threading.Event()

    def other_send() -> None:
        with send_lock(config):
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
    with send_lock(config):
        threading.Timer(0.2, stop.set).start()
        with pytest.raises(NewsletterError, match="another send"):
            run_weekly(config, [SAMPLE], now=NOW, wait_for_send=True, stop=stop)


def test_a_new_issue_weighs_its_keywords_against_the_archive(tmp_path: Path):
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
        store.save_issue(past)
        assert section_of(store) == "Quellan"
    assert section_of(None) == "Zorbic"
