"""The ledger as a send uses it: the audience streamed in, rows claimed, marks made.

Every test runs on SQLite and on a real PostgreSQL server (the `pg_url` fixture starts one).
"""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from newsletter.errors import StoreError
from newsletter.store import migrations
from newsletter.store.state import Store
from tests.support.clock import Clock
from tests.support.ledger import marking

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state.db")
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(target: str, clock: Clock):
    with Store.open(target, clock=clock) as s:
        yield s


def rows_of(store: Store, issue: str = "W") -> dict[str, object]:
    return {r.email: r for r in store.ledger.rows(issue)}


# -- the audience -------------------------------------------------------------------------------


def test_the_audience_streams_in_chunks_and_a_rerun_refreshes_only_pending_rows(
    store, clock
) -> None:
    people = [(f"u{i}@example.org", "html:all", f"U {i}") for i in range(5)]
    written = store.ledger.write_audience("W", iter(people), chunk=2)
    assert (written.rows, written.new) == (5, 5)
    with marking(store, "W") as marks:
        marks.sent("u0@example.org", "<m0@example.org>")
    clock.now = T0 + timedelta(hours=1)
    changed = [(e, "text:0.2", n.upper()) for e, _, n in people] + [
        ("U5@Example.org", "html:all", None)
    ]
    again = store.ledger.write_audience("W", changed, chunk=4)
    assert (again.rows, again.new) == (6, 1)  # counted from the inserts, never by COUNT(*)
    rows = rows_of(store)
    sent = rows["u0@example.org"]
    assert (sent.status, sent.variant, sent.name) == ("sent", "html:all", "U 0")  # final: kept
    pending = rows["u1@example.org"]
    assert (pending.variant, pending.name, pending.updated_at) == ("text:0.2", "U 1", again.at)
    assert rows["u5@example.org"].status == "pending"  # keyed in lower case


def test_within_a_chunk_the_last_entry_for_an_address_wins(store) -> None:
    # the state's entry for an address follows the file's, and must win
    store.ledger.write_audience(
        "W", [("a@example.org", "html:all", "From the file"), ("a@example.org", "text:1", "Ann")]
    )
    (row,) = store.ledger.rows("W")
    assert (row.variant, row.name) == ("text:1", "Ann")


def test_pending_rows_a_complete_pass_did_not_touch_are_skipped(store, clock) -> None:
    store.ledger.write_audience("W", [(f"{n}@example.org", "html:all", None) for n in "abc"])
    with marking(store, "W") as marks:
        marks.sent("c@example.org", None)
    clock.now = T0 + timedelta(minutes=5)
    written = store.ledger.write_audience("W", [("a@example.org", "html:all", None)])
    assert store.ledger.skip_absent("W", written, "no longer in the audience") == 1
    rows = rows_of(store)
    assert [rows[e].status for e in ("a@example.org", "b@example.org", "c@example.org")] == [
        "pending",
        "skipped",
        "sent",
    ]
    assert rows["b@example.org"].last_error == "no longer in the audience"


def test_two_hosts_writing_the_audience_at_once_skip_no_one_in_it(target: str) -> None:
    # host B starts its pass later but its chunk lands first; host A's (older) pass then writes
    # the same rows: B's rows must not look older than B's pass, or B skips people still in it
    people = [(f"{n}@example.org", "html:all", None) for n in "abc"]
    later, earlier = Clock(T0 + timedelta(minutes=1)), Clock(T0)
    with Store.open(target, clock=later) as b, Store.open(target, clock=earlier) as a:
        passed = b.ledger.write_audience("W", people)
        a.ledger.write_audience("W", people)
        assert b.ledger.skip_absent("W", passed, "no longer in the audience") == 0
        assert b.ledger.counts("W")["pending"] == 3


def test_forget_drops_the_pending_rows_of_an_issue_never_archived(store) -> None:
    store.ledger.write_audience("W", [(f"{n}@example.org", "html:all", None) for n in "ab"])
    with marking(store, "W") as marks:
        marks.sent("a@example.org", None)
    assert store.ledger.forget("W") == 1
    assert [r.email for r in store.ledger.rows("W")] == ["a@example.org"]


# -- claims and marks ---------------------------------------------------------------------------


def test_claimed_rows_carry_what_a_message_needs(store) -> None:
    store.ledger.write_audience(
        "W", [("b@example.org", "text:0.3", "Bea"), ("a@example.org", "html:all", None)]
    )
    known = store.recipients.id_of("a@example.org")
    store.suppress("b@example.org", "unsubscribed")
    claims = store.claims("W", lease_seconds=30)
    try:
        taken = {row.email: row for row in claims.take(10)}
        assert claims.take(10) == []
    finally:
        claims.close()
    a, b = taken["a@example.org"], taken["b@example.org"]
    assert (a.name, a.variant, a.attempts, a.recipient_id, a.suppressed) == (
        None,
        "html:all",
        0,
        known,
        False,
    )
    assert (b.name, b.variant, b.suppressed) == ("Bea", "text:0.3", True)
    assert b.recipient_id == store.recipients.id_of("b@example.org")  # made when written


def test_marks_record_each_outcome(store, clock) -> None:
    store.ledger.write_audience("W", [(f"{n}@example.org", "html:all", None) for n in "abcdef"])
    with marking(store, "W") as earlier:  # an earlier run tried a once
        earlier.pending("a@example.org", "451 later")
    clock.now = T0 + timedelta(minutes=5)
    with marking(store, "W") as earlier:  # and a rerun sent it
        earlier.sent("a@example.org", "<a@mail>")
    claims = store.claims("W", lease_seconds=30)
    try:
        assert len(claims.take(10)) == 5
        marks = claims.marks
        assert marks.sent("b@example.org", "<b@mail>")
        assert marks.failed("c@example.org", "550 5.1.1 no such user")
        assert marks.pending("d@example.org", "450 4.2.0 greylisted")
        assert marks.pending("e@example.org", "RCPT: 550 5.7.1 relaying denied", tried=False)
        assert marks.skipped("f@example.org", "unsubscribed since")
        assert not marks.sent("c@example.org", "<c@mail>")  # failed for good: stays so
    finally:
        claims.close()
    rows = rows_of(store)
    a, b = rows["a@example.org"], rows["b@example.org"]
    assert (b.status, b.attempts, b.last_error, b.message_id) == ("sent", 1, None, "<b@mail>")
    assert b.updated_at == a.updated_at == T0 + timedelta(minutes=5)
    assert (rows["c@example.org"].status, rows["c@example.org"].attempts) == ("failed", 1)
    d, e = rows["d@example.org"], rows["e@example.org"]
    assert (d.status, d.attempts, d.last_error) == ("pending", 1, "450 4.2.0 greylisted")
    assert (e.status, e.attempts) == ("pending", 0)
    assert (rows["f@example.org"].status, rows["f@example.org"].attempts) == ("skipped", 0)
    # the rows left pending were given back when the sender closed
    assert all(r.lease_owner is None and r.lease_until is None for r in rows.values())
    assert store.ledger.to_retry("W") == 2


def test_marks_from_many_threads_are_each_committed(store) -> None:
    emails = [f"t{i:03d}@example.org" for i in range(200)]
    store.ledger.write_audience("W", [(e, "html:all", None) for e in emails])
    claims = store.claims("W", lease_seconds=30)
    try:
        assert len(claims.take(500)) == 200

        def work(part: list[str]) -> None:
            for e in part:
                assert claims.marks.sent(e, f"<{e}>")

        threads = [threading.Thread(target=work, args=(emails[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # committed: another connection sees every row while the sender is still open
        assert store.ledger.counts("W")["sent"] == 200
    finally:
        claims.close()


def test_a_mark_that_cannot_be_written_names_the_database(tmp_path) -> None:
    with Store.open(tmp_path / "state.db") as store:
        store.ledger.write_audience("W", [("a@example.org", "html:all", None)])
        claims = store.claims("W")
        try:
            claims.take(1)
            with closing(sqlite3.connect(tmp_path / "state.db")) as other:
                other.execute("ALTER TABLE ledger RENAME TO ledger_gone")
            with pytest.raises(StoreError, match=r"state\.db: no such table: ledger"):
                claims.marks.sent("a@example.org", "<a@mail>")
        finally:
            claims.close()


# -- several senders on PostgreSQL ----------------------------------------------------------------


def test_senders_claim_disjoint_rows_and_a_dead_ones_come_back_after_its_lease(pg_url) -> None:
    with Store.open(pg_url) as store:
        emails = [f"r{i:02d}@example.org" for i in range(30)]
        store.ledger.write_audience("W", [(e, "html:all", None) for e in emails])
        first = store.claims("W", lease_seconds=2)
        second = store.claims("W", lease_seconds=2)
        try:
            a = {r.email for r in first.take(10)}
            b = {r.email for r in second.take(10)}
            assert len(a) == len(b) == 10 and not a & b
            held = {r.email: r.lease_owner for r in store.ledger.rows("W") if r.lease_owner}
            assert set(held) == a | b and set(held.values()) == {first.owner, second.owner}
            # the second finishes its share; the first "dies": its heartbeat stops
            for email in b:
                assert second.marks.sent(email, None)
            first._stop.set()
            first._beat.join()
            rest = {r.email for r in second.take(50)}
            assert rest == set(emails) - a - b  # the dead one's rows are still held
            wait = second.held_elsewhere()
            assert wait is not None and wait <= 2
            time.sleep(wait + 0.2)
            assert {r.email for r in second.take(50)} == a  # its lease ran out: taken over
            assert second.held_elsewhere() is None
            # the first one's late mark finds the row no longer its own, and changes nothing
            email = sorted(a)[0]
            assert not first.marks.sent(email, "<late@mail>")
            assert second.marks.sent(email, "<b@mail>")
            assert rows_of(store)[email].message_id == "<b@mail>"
        finally:
            first.close()
            second.close()


def test_the_heartbeat_keeps_a_live_senders_rows_its_own(pg_url) -> None:
    with Store.open(pg_url) as store:
        store.ledger.write_audience(
            "W", [(f"h{i}@example.org", "html:all", None) for i in range(4)]
        )
        live = store.claims("W", lease_seconds=4)
        other = store.claims("W", lease_seconds=4)
        try:
            assert len(live.take(10)) == 4
            time.sleep(5)  # longer than the lease: renewed meanwhile (every second)
            assert live.holding()
            assert other.take(10) == []
            assert other.held_elsewhere() is not None
        finally:
            live.close()  # gives its rows back at once
        try:
            assert len(other.take(10)) == 4
        finally:
            other.close()


def test_a_row_left_for_a_later_run_is_given_back_and_waits_its_time(pg_url) -> None:
    with Store.open(pg_url) as store:
        store.ledger.write_audience("W", [(f"g{i}@example.org", "html:all", None) for i in "12"])
        first = store.claims("W", lease_seconds=30)
        second = store.claims("W", lease_seconds=30)
        try:
            assert len(first.take(10)) == 2
            assert first.marks.later("g1@example.org", "451 4.7.1 try again later", after=3)
            row = rows_of(store)["g1@example.org"]
            assert (row.lease_owner, row.attempts) == (None, 1)
            # no one waits for it (only g2 is held), and no one takes it before its time
            assert second.take(10) == []
            assert second.held_elsewhere() is not None  # g2, still the first sender's
            assert first.marks.sent("g2@example.org", None)
            assert second.held_elsewhere() is None
            time.sleep(3.2)
            assert [r.email for r in second.take(10)] == ["g1@example.org"]
        finally:
            first.close()
            second.close()


def test_a_sender_that_cannot_renew_stops_holding_before_its_lease_ends(pg_url) -> None:
    with Store.open(pg_url) as store:
        claims = store.claims("W", lease_seconds=2)
        try:
            assert claims.holding()
            claims._stop.set()  # no heartbeat from now on, as when the database is unreachable
            claims._beat.join()
            time.sleep(1.6)  # three quarters of the lease: the quarter left is its margin
            assert not claims.holding()
        finally:
            claims.close()


# -- the upgrade --------------------------------------------------------------------------------


def test_a_version_3_ledger_is_upgraded_keeping_its_rows(target) -> None:
    engine = sa.create_engine(
        target if "://" in target else f"sqlite:///{target}", poolclass=sa.pool.NullPool
    )
    with engine.begin() as conn:
        assert migrations.upgrade(conn, target=3) == (0, 3)
        for email, status in (("ann@example.org", "sent"), ("bob@example.org", "pending")):
            conn.execute(
                sa.text(
                    "INSERT INTO ledger (issue_id, email, variant, status, attempts, updated_at)"
                    " VALUES ('2026-W01', :email, 'html:all', :status, 1,"
                    " '2026-01-05 00:00:00+00')"
                ),
                {"email": email, "status": status},
            )
    engine.dispose()
    with Store.open(target) as store:
        assert store.schema_version == migrations.LATEST == 4
        rows = {r.email: r for r in store.ledger.rows("2026-W01")}
        assert {e: r.status for e, r in rows.items()} == {
            "ann@example.org": "sent",
            "bob@example.org": "pending",
        }
        bob = rows["bob@example.org"]
        assert (bob.name, bob.lease_owner, bob.lease_until, bob.attempts) == (None, None, None, 1)
        # an upgraded row is claimed and marked like any other
        claims = store.claims("2026-W01")
        try:
            (taken,) = claims.take(5)
            assert dataclasses.astuple(taken)[:4] == ("bob@example.org", None, "html:all", 1)
            assert claims.marks.sent("bob@example.org", None)
        finally:
            claims.close()
        assert store.ledger.counts("2026-W01")["sent"] == 2


def test_a_marks_timestamp_is_stored_as_the_column_type_stores_it() -> None:
    from datetime import timedelta as td

    from newsletter.store.database import _sqlite_stamp
    from newsletter.store.migrations import UTCDateTime

    dialect = sa.create_engine("sqlite://").dialect
    bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert bind is not None
    berlin = timezone(td(hours=1))
    for moment in (T0, datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=berlin)):
        assert _sqlite_stamp(moment) == bind(moment)
    with pytest.raises(ValueError, match="naive datetime"):
        _sqlite_stamp(datetime(2026, 1, 1))


def test_a_mark_that_postgresql_refuses_names_the_database(pg_url) -> None:
    with Store.open(pg_url) as store:
        store.ledger.write_audience("W", [("a@example.org", "html:all", None)])
        claims = store.claims("W")
        try:
            claims.take(1)
            with store.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE ledger RENAME TO ledger_gone"))
            with pytest.raises(StoreError, match=r"t_\w+: .*ledger"):
                claims.marks.sent("a@example.org", "<a@mail>")
        finally:
            claims.close()  # its rows cannot be given back: their lease runs out instead
