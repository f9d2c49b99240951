from __future__ import annotations

import dataclasses
import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.config import parse_config
from newsletter.models import Issue, Paper, Section, Subscriber
from newsletter.store import migrations
from newsletter.store.schema import metadata
from newsletter.store.state import Store, StoreError, state_url
from tests.support.clock import Clock
from tests.support.ledger import enqueue, marking

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(tmp_path, clock):
    with Store.open(tmp_path / "state.db", clock=clock) as s:
        yield s


def make_issue(issue_id: str = "2026-W48") -> Issue:
    berlin = timezone(timedelta(hours=1))
    a = Paper(
        "2611.00001",
        "Diffusion, faster",
        ("Ada Lovelace", "Alan Turing"),
        "We make diffusion models fast.",
        url="https://arxiv.org/abs/2611.00001",
        published=datetime(2026, 11, 20, 12, 30, tzinfo=timezone.utc),
        upvotes=42,
        source="hf_api",
        categories=("cs.CV", "cs.LG"),
        keywords=("diffusion models", "few-step sampling"),
    )
    b = Paper("title:3f2a9c", "A paper without an arXiv id", source="file")
    c = Paper("2611.00003", "Reasoning about reasoning", ("Kurt Gödel",), upvotes=3)
    return Issue(
        id=issue_id,
        title="Papers of the week",
        start=datetime(2026, 11, 16, 9, 0, tzinfo=berlin),
        end=datetime(2026, 11, 23, 9, 0, tzinfo=berlin),
        sections=(Section("Diffusion", (a,), (b,)), Section("Reasoning", (c,))),
        paper_count=3,
        email_count=2,
        web_only_count=1,
        web_url=f"http://localhost:8000/issues/{issue_id}",
    )


def test_migrations_build_exactly_the_schema_the_store_queries(store) -> None:
    inspector = sa.inspect(store.engine)
    for table in metadata.sorted_tables:
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        pk = set(inspector.get_pk_constraint(table.name)["constrained_columns"])
        assert pk == {c.name for c in table.primary_key.columns}, table.name
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("ledger")}
    assert indexes["ix_ledger_issue_status"] == ["issue_id", "status"]
    assert store.schema_version == migrations.LATEST


def test_sqlite_runs_in_wal_mode_with_normal_sync(store, tmp_path) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    assert (tmp_path / "state.db").is_file()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path) -> None:
    with Store.open(tmp_path / "state.db") as s:
        s.suppress("a@example.org", "bounced")
    with Store.open(tmp_path / "state.db") as s:
        assert s.is_suppressed("a@example.org")
        assert s.schema_version == migrations.LATEST


def test_a_version_1_database_is_upgraded_keeping_its_rows(tmp_path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert migrations.upgrade(conn, target=1) == (0, 1)
        # rows as the version-1 program wrote them
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, name, topics, format, source, status, created_at)"
                " VALUES ('ann@example.org', 'Ann', '[\"Vision\"]', 'text', 'web', 'confirmed',"
                " '2026-01-02 03:04:05.000000')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO suppressions (email, reason, at) VALUES"
                " ('gone@example.org', 'unsubscribed', '2026-01-03 00:00:00.000000')"
            )
        )
        sections = [
            {"topic": "Vision", "papers": [{"id": "2601.1", "title": "x"}]},
            {"topic": "Other", "papers": [], "more_papers": [{"id": "2601.2", "title": "y"}]},
        ]
        conn.execute(
            sa.text(
                "INSERT INTO issues (id, title, window_start, window_end, created_at, sections,"
                " counts, web_url, web_html) VALUES ('2026-W01', 'Old', '2025-12-29 00:00:00',"
                " '2026-01-05 00:00:00', '2026-01-05 00:00:00', :sections, '{}', '', '<p>')"
            ),
            {"sections": json.dumps(sections)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO ledger (issue_id, email, variant, status, attempts, updated_at)"
                " VALUES ('2026-W01', 'ann@example.org', 'text:Vision', 'sent', 1,"
                " '2026-01-05 00:00:00')"
            )
        )
    engine.dispose()

    with Store.open(path) as s:
        assert s.schema_version == migrations.LATEST
        stored = s.get_subscriber("ann@example.org")
        assert stored is not None
        assert stored.subscriber == Subscriber(
            "ann@example.org", "Ann", frozenset({"Vision"}), "text", "web"
        )
        assert stored.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        assert s.suppressed_set() == {"gone@example.org"}
        assert s.ledger.counts("2026-W01")["sent"] == 1
        assert [i.id for i in s.archive.list_issues()] == ["2026-W01"]
        # the new table was filled from the archive
        assert s.archive.sent_paper_ids() == {"2601.1", "2601.2"}


def test_a_database_newer_than_the_program_is_refused(tmp_path) -> None:
    path = tmp_path / "new.db"
    Store.open(path).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"schema version 99 is newer .*; upgrade newsletter"):
        Store.open(path)


def test_subscriber_round_trip_and_confirmation(store, clock) -> None:
    sub = Subscriber("Zoe@Example.org", "Zoe", frozenset({"Vision", "Robotics"}), "text", "web")
    assert store.add_subscriber(sub) is True
    stored = store.get_subscriber("zoe@example.org")
    assert stored is not None and stored.status == "pending"
    assert stored.subscriber.email == "zoe@example.org"
    assert stored.subscriber.topics == frozenset({"Vision", "Robotics"})
    assert stored.created_at == T0 and stored.confirmed_at is None
    assert store.confirmed_subscribers() == []

    clock.now = T0 + timedelta(hours=3)
    assert store.confirm_subscriber("ZOE@example.org") is True
    assert store.confirm_subscriber("zoe@example.org") is False  # nothing pending any more
    stored = store.get_subscriber("zoe@example.org")
    assert stored is not None and stored.status == "confirmed"
    assert stored.confirm_sent_at is None  # no confirmation email: added, not signed up
    assert stored.confirmed_at == T0 + timedelta(hours=3)

    # new preferences; a pending re-subscribe never un-confirms
    assert store.add_subscriber(Subscriber("zoe@example.org", None, None, "html", "web")) is False
    assert store.confirmed_subscribers() == [Subscriber("zoe@example.org", source="web")]
    assert store.get_subscriber("nobody@example.org") is None


def test_suppressions(store) -> None:
    assert not store.is_suppressed("a@example.org")
    store.suppress("a@example.org", "unsubscribed")
    store.suppress("b@example.org", "bounced", "550 5.1.1 user unknown")
    store.suppress("A@example.org", "complained")  # again: the later reason replaces
    assert store.is_suppressed("a@example.org")
    assert store.suppressed_set() == {"a@example.org", "b@example.org"}
    with store.engine.connect() as conn:
        reason = conn.exec_driver_sql(
            "SELECT reason FROM suppressions WHERE email = 'a@example.org'"
        ).scalar()
    assert reason == "complained"
    assert store.clear_suppression("a@example.org") is True
    assert store.clear_suppression("a@example.org") is False
    assert store.suppressed_set() == {"b@example.org"}
    with pytest.raises(ValueError, match="suppression reason 'spam'"):
        store.suppress("c@example.org", "spam")


def test_issue_archive_round_trip(store, clock) -> None:
    issue = make_issue()
    store.archive.save_issue(issue, "<html>web</html>")
    archived = store.archive.get_issue("2026-W48")
    assert archived is not None
    assert archived.issue == issue
    assert archived.issue.sections[0].papers[0].keywords == (
        "diffusion models",
        "few-step sampling",
    )
    assert archived.issue.sections[0].more_papers[0].title == "A paper without an arXiv id"
    assert archived.web_html == "<html>web</html>"
    assert archived.created_at == T0

    clock.now = T0 + timedelta(days=1)
    store.archive.save_issue(
        make_issue(), "<html>v2</html>"
    )  # rebuilt: replaced, first save's time kept
    archived = store.archive.get_issue("2026-W48")
    assert archived is not None
    assert (archived.web_html, archived.created_at) == ("<html>v2</html>", T0)
    assert store.archive.get_issue("2026-W01") is None


def test_archived_papers_are_the_distinct_papers_of_every_issue(store) -> None:
    store.archive.save_issue(make_issue("2026-W47"))
    store.archive.save_issue(make_issue("2026-W48"))  # the same three papers again
    papers = store.archive.archived_papers()
    assert sorted(p.id for p in papers) == ["2611.00001", "2611.00003", "title:3f2a9c"]
    assert next(p for p in papers if p.id == "2611.00001").abstract == (
        "We make diffusion models fast."
    )
    assert len(store.archive.archived_papers(exclude_issue="2026-W48")) == 3


def test_an_empty_archive_has_no_papers(tmp_path) -> None:
    with Store.open(tmp_path / "empty.db") as empty:
        assert empty.archive.archived_papers() == []


def test_list_issues_newest_first_with_ledger_counts(store) -> None:
    store.archive.save_issue(make_issue("2026-W47"))
    store.archive.save_issue(
        dataclasses.replace(make_issue("2026-W46"), end=T0 - timedelta(days=14))
    )
    store.archive.save_issue(make_issue("2026-W48"))
    enqueue(store, "2026-W48", [("a@example.org", "html:all"), ("b@example.org", "html:all")])
    with marking(store, "2026-W48") as marks:
        marks.sent("a@example.org", "<1@example.org>")

    listed = store.archive.list_issues()
    assert [i.id for i in listed] == ["2026-W48", "2026-W47", "2026-W46"]
    assert listed[0].ledger == {"pending": 1, "sent": 1, "failed": 0, "skipped": 0}
    assert listed[1].ledger == {"pending": 0, "sent": 0, "failed": 0, "skipped": 0}
    assert listed[0].counts == {"paper_count": 3, "email_count": 2, "web_only_count": 1}


def test_sent_papers(store) -> None:
    assert store.archive.sent_paper_ids() == set()
    store.archive.record_sent_papers("2026-W47", ["p1", "p2", "p2"])
    store.archive.record_sent_papers("2026-W48", ["p3"])
    store.archive.record_sent_papers("2026-W48", ["p3"])  # again: no error, no duplicate
    assert store.archive.sent_paper_ids() == {"p1", "p2", "p3"}
    assert store.archive.sent_paper_ids(exclude_issue="2026-W48") == {"p1", "p2"}


def test_archiving_an_issue_can_record_its_papers_in_the_same_transaction(store) -> None:
    issue = make_issue("2026-W49")
    store.archive.save_issue(issue, record_papers=True)
    assert store.archive.sent_paper_ids() == {p.id for p in issue.papers} != set()


def test_enqueue_is_idempotent_and_never_resets_a_row(store) -> None:
    rows = [(f"u{i}@example.org", "html:all") for i in range(3)]
    assert enqueue(store, "W", rows) == 3
    with marking(store, "W") as marks:
        marks.sent("u0@example.org", "<m0@example.org>")
    assert enqueue(store, "W", [*rows, ("U3@example.org", "text:all")]) == 1
    assert store.ledger.counts("W") == {"pending": 3, "sent": 1, "failed": 0, "skipped": 0}
    assert [r.email for r in store.ledger.rows("W", "pending")] == [
        "u1@example.org",
        "u2@example.org",
        "u3@example.org",
    ]
    assert enqueue(store, "W", []) == 0
    assert enqueue(store, "OTHER", rows) == 3  # another issue has its own rows


def test_ledger_status_transitions(store, clock) -> None:
    enqueue(store, "W", [(f"{n}@example.org", "html:all") for n in "abcde"])
    clock.now = T0 + timedelta(minutes=1)
    with marking(store, "W") as marks:
        assert marks.sent("a@example.org", "<a@mail>")
        assert marks.pending("b@example.org", "451 try later")
        assert marks.failed("c@example.org", "550 no such user")
        assert marks.skipped("d@example.org", "suppressed since enqueued")

    rows = {r.email: r for r in store.ledger.rows("W")}
    assert (rows["a@example.org"].status, rows["a@example.org"].attempts) == ("sent", 1)
    assert rows["a@example.org"].message_id == "<a@mail>"
    assert rows["a@example.org"].updated_at == T0 + timedelta(minutes=1)
    assert (rows["b@example.org"].status, rows["b@example.org"].attempts) == ("pending", 1)
    assert rows["b@example.org"].last_error == "451 try later"
    assert (rows["c@example.org"].status, rows["c@example.org"].last_error) == (
        "failed",
        "550 no such user",
    )
    assert (rows["d@example.org"].status, rows["d@example.org"].attempts) == ("skipped", 0)
    assert [r.email for r in store.ledger.rows("W", "pending")] == [
        "b@example.org",
        "e@example.org",
    ]
    assert [r.email for r in store.ledger.rows("W", "failed")] == ["c@example.org"]

    # final rows stay final: a mark on one changes nothing and says so
    with marking(store, "W") as marks:
        assert not marks.failed("a@example.org", "late error")
        assert not marks.sent("c@example.org", "<c@mail>")
        assert not marks.sent("d@example.org", "<d@mail>")
    rows = {r.email: r for r in store.ledger.rows("W")}
    assert [rows[e].status for e in ("a@example.org", "c@example.org", "d@example.org")] == [
        "sent",
        "failed",
        "skipped",
    ]
    assert rows["a@example.org"].message_id == "<a@mail>"
    assert store.ledger.counts("W") == {"pending": 2, "sent": 1, "failed": 1, "skipped": 1}


def test_rows_to_retry_are_pending_rows_with_an_error(store) -> None:
    enqueue(store, "W", [(f"{n}@example.org", "html:all") for n in "abcd"])
    with marking(store, "W") as marks:
        marks.pending("a@example.org", "450 4.2.0 greylisted")
        marks.pending("b@example.org", "RCPT: 550 5.1.8 sender rejected", tried=False)
        marks.failed("c@example.org", "gave up", tried=False)
    rows = {r.email: r for r in store.ledger.rows("W")}
    assert (rows["a@example.org"].attempts, rows["b@example.org"].attempts) == (1, 0)
    assert rows["b@example.org"].last_error == "RCPT: 550 5.1.8 sender rejected"
    assert (rows["c@example.org"].status, rows["c@example.org"].attempts) == ("failed", 0)
    assert store.ledger.to_retry("W") == 2  # a and b; d was never tried
    assert store.archive.list_issues() == []  # only archived issues are listed
    store.archive.save_issue(make_issue("W"))
    (listed,) = store.archive.list_issues()
    assert (listed.ledger["pending"], listed.to_retry) == (3, 2)
    with marking(store, "W") as marks:
        marks.sent("a@example.org", "<a@mail>")
    assert store.ledger.to_retry("W") == 1


def test_only_bounce_suppressions_are_lifted_and_each_keeps_its_reply(store, clock) -> None:
    store.suppress("a@example.org", "bounced", "RCPT: 550 5.1.8 sender rejected")
    store.suppress("b@example.org", "unsubscribed", "one-click unsubscribe")
    why = store.suppressions()
    assert why["a@example.org"].detail == "RCPT: 550 5.1.8 sender rejected"
    assert (why["b@example.org"].reason, why["b@example.org"].at) == ("unsubscribed", T0)
    assert store.lift_bounces(["A@example.org", "b@example.org", "c@example.org"]) == 1
    assert store.suppressed_set() == {"b@example.org"}
    assert store.lift_bounces([]) == 0


def test_reading_rows_pages_and_tolerates_marks_while_iterating(store) -> None:
    emails = [f"user{i:02d}@example.org" for i in range(7)]
    enqueue(store, "W", [(e, "html:all") for e in reversed(emails)])
    seen = []
    with marking(store, "W") as marks:
        for row in store.ledger.rows("W", "pending", chunk=2):
            seen.append(row.email)
            marks.sent(row.email, None)
    assert seen == emails
    assert store.ledger.counts("W")["sent"] == 7
    assert list(store.ledger.rows("W", "pending", chunk=2)) == []


def test_state_url_resolves_against_the_config_folder(tmp_path) -> None:
    base = tmp_path / "site"

    def url(state: str) -> str:
        config = parse_config(f"state: '{state}'\n", base_dir=base)
        return state_url(config.state_settings()).render_as_string(hide_password=False)

    assert url("newsletter.db") == f"sqlite:///{base / 'newsletter.db'}"
    assert url("sqlite:///data/n.db") == f"sqlite:///{base / 'data/n.db'}"
    assert url("sqlite:////var/lib/n.db") == "sqlite:////var/lib/n.db"
    assert url("postgresql://nl:pw@db.internal/nl") == "postgresql://nl:pw@db.internal/nl"


def test_from_config_opens_the_configured_file(tmp_path) -> None:
    config = parse_config("topics:\n  - name: A\n    keywords: [a]\n", base_dir=tmp_path)
    with Store.from_settings(config.state_settings()) as s:
        s.suppress("a@example.org", "removed")
    assert (tmp_path / "newsletter.db").is_file()  # the default `state:`


def test_open_errors_name_the_database_without_its_password(tmp_path) -> None:
    with pytest.raises(StoreError) as info:
        Store.open("postgresql://newsletter:hunter2-pass@127.0.0.1:1/newsletter")
    assert "127.0.0.1" in str(info.value)
    assert "hunter2-pass" not in str(info.value)
    with pytest.raises(StoreError, match="mysql is not supported; use SQLite or PostgreSQL"):
        Store.open("mysql://u@127.0.0.1/db")
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match=str(tmp_path / "dir.db")):
        Store.open(tmp_path / "dir.db")


def test_a_fresh_store_in_an_existing_folder(tmp_path: Path) -> None:
    with Store.open(tmp_path / "state.db") as s:
        assert s.ledger.counts("W") == {"pending": 0, "sent": 0, "failed": 0, "skipped": 0}


@pytest.mark.parametrize("form", ["url", "path"])
def test_a_configured_state_folder_that_does_not_exist_is_named_and_never_created(
    tmp_path: Path, form: str
) -> None:
    from newsletter.store import send_lock

    missing = tmp_path / "nonexistent" / "dir"
    state = f"sqlite:///{missing}/x.db" if form == "url" else str(missing / "x.db")
    config = parse_config(f"state: '{state}'\n", base_dir=tmp_path)
    for opening in (
        lambda: Store.from_settings(config.state_settings()),
        lambda: send_lock(config.state_settings()).__enter__(),
    ):
        with pytest.raises(StoreError) as info:
            opening()
        line = str(info.value)
        assert line.startswith("config.yaml: state: ") and str(missing) in line, line
        assert "create the folder" in line and "\n" not in line
    with pytest.raises(StoreError, match="no such folder"):
        Store.open(missing / "x.db")
    assert not (tmp_path / "nonexistent").exists()


def test_the_default_state_folder_is_made_when_missing(tmp_path: Path) -> None:
    config = parse_config("{}\n", base_dir=tmp_path / "fresh")
    with Store.from_settings(config.state_settings()) as s:
        assert s.schema_version == migrations.LATEST
    assert (tmp_path / "fresh" / "newsletter.db").is_file()


# -- version 3: recipient ids, sign-up requests, the mail queue -----------------------------------


def test_a_version_2_database_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert migrations.upgrade(conn, target=2) == (0, 2)
        conn.execute(
            sa.text(
                "INSERT INTO subscribers (email, name, topics, format, source, status, created_at,"
                " confirm_sent_at) VALUES ('wait@example.org', 'Wait', NULL, 'html', 'web',"
                " 'pending', '2026-01-02 03:04:05.000000', '2026-01-02 03:04:05.000000')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO ledger (issue_id, email, variant, status, attempts, updated_at)"
                " VALUES ('2026-W01', 'ann@example.org', 'html:all', 'sent', 1,"
                " '2026-01-05 00:00:00')"
            )
        )
        conn.execute(sa.text("INSERT INTO sent_papers VALUES ('2601.1', '2026-W01')"))
    engine.dispose()

    with Store.open(path) as s:
        assert s.schema_version == migrations.LATEST
        stored = s.get_subscriber("wait@example.org")
        assert stored is not None and stored.status == "pending"
        assert stored.subscriber.name == "Wait"
        assert s.ledger.counts("2026-W01")["sent"] == 1
        assert s.archive.sent_paper_ids() == {"2601.1"}
        # the new tables start empty and work at once
        assert s.mail_queue.waiting() == [] and s.signups.get("no-such-request") is None
        assert s.recipients.email_of(s.recipients.id_of("ann@example.org")) == "ann@example.org"


def test_recipient_ids_are_opaque_stable_and_one_per_address(store) -> None:
    ann, bob = store.recipients.id_of("Ann@Example.org"), store.recipients.id_of("bob@example.org")
    assert store.recipients.id_of("ann@example.org") == ann != bob  # one per address, kept
    assert all("@" not in i and "ann" not in i and len(i) >= 16 for i in (ann, bob))
    # the audience written into the ledger gives ids too, and never changes one
    people = [(f"r{i}@example.org", "html:all", None) for i in range(1200)]
    store.ledger.write_audience("W", [*people, ("ann@example.org", "html:all", None)])
    with store.db.read() as conn:  # read before `id_of`, which would make a missing one
        written = dict(conn.execute(sa.text("SELECT email, id FROM recipients")).all())
    assert written["ann@example.org"] == ann
    assert len({written[e] for e, _, _ in people}) == 1200
    assert store.recipients.email_of(bob) == "bob@example.org"
    assert store.recipients.email_of("not-an-id") is None


def test_confirming_a_request_applies_that_request_and_forgets_the_others(store, clock) -> None:
    owner = Subscriber("owner@example.org", "Real Owner", frozenset({"LLM Reasoning"}), "html")
    mine = store.signups.open(owner, timedelta(hours=24))
    assert mine is not None
    stranger = dataclasses.replace(owner, name="Pwned by Mallory", topics=frozenset({"Video"}))
    assert store.signups.open(stranger, timedelta(hours=24)) is None  # no second email today
    clock.now += timedelta(hours=25)
    theirs = store.signups.open(stranger, timedelta(hours=24))
    assert theirs is not None
    pending = store.get_subscriber("owner@example.org")
    assert pending is not None and pending.subscriber.name == "Real Owner"  # left as it was
    assert [m.ref for m in store.mail_queue.waiting()] == [mine, theirs]

    applied = store.signups.confirm(mine)
    assert applied is not None and applied.name == "Real Owner"
    confirmed = store.get_subscriber("owner@example.org")
    assert confirmed is not None and confirmed.status == "confirmed"
    assert confirmed.subscriber.topics == frozenset({"LLM Reasoning"})
    assert store.signups.confirm(theirs) is None  # forgotten with the confirmation
    assert store.mail_queue.waiting() == []


def test_the_mail_queue_claims_defers_and_hides_a_claimed_row(store, clock) -> None:
    request = store.signups.open(Subscriber("q@example.org"), timedelta(hours=24))
    [item] = store.mail_queue.claim(timedelta(minutes=10))
    assert (item.email, item.ref, item.attempts) == ("q@example.org", request, 1)
    assert store.mail_queue.claim(timedelta(minutes=10)) == []  # leased to the first worker
    store.mail_queue.defer(item, timedelta(minutes=1), "421 try later")
    clock.now += timedelta(seconds=59)
    assert store.mail_queue.claim(timedelta(minutes=10)) == []
    clock.now += timedelta(seconds=1)
    [again] = store.mail_queue.claim(timedelta(minutes=10))
    assert (again.attempts, again.last_error) == (2, "421 try later")
    store.mail_queue.done(again)
    assert store.mail_queue.waiting() == [] and store.mail_queue.next_due() is None


def test_requests_nobody_confirms_are_forgotten_after_30_days(store, clock) -> None:
    request = store.signups.open(Subscriber("late@example.org"), timedelta(hours=24))
    assert request is not None
    clock.now += timedelta(days=29)
    store.signups.forget_old()
    assert store.signups.get(request) is not None  # still within the 30 days
    clock.now += timedelta(days=2)
    store.signups.forget_old()  # what the confirmation worker does every round
    assert store.signups.get(request) is None
