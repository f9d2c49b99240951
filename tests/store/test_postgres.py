"""The state store on a real PostgreSQL server: the same behaviour as on SQLite."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from newsletter.models import Subscriber
from newsletter.store import Store, migrations
from tests.support.ledger import enqueue, marking

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def test_a_postgresql_state_migrates_and_keeps_the_ledger(pg_url: str) -> None:
    with Store.open(pg_url) as store:
        assert store.schema_version == migrations.LATEST
        added = enqueue(
            store, "2026-W48", [("a@example.org", "html:all"), ("b@example.org", "html:all")]
        )
        assert added == 2
        assert enqueue(store, "2026-W48", [("a@example.org", "html:all")]) == 0
        with marking(store, "2026-W48") as marks:
            assert marks.sent("a@example.org", "<m@example.org>")
            assert marks.failed("b@example.org", "550 5.1.1 no such user")
        store.suppress("b@example.org", "bounced", "550 5.1.1 no such user")
    with Store.open(pg_url) as again:  # a second process sees what the first committed
        assert again.ledger.counts("2026-W48") == {
            "pending": 0,
            "sent": 1,
            "failed": 1,
            "skipped": 0,
        }
        assert again.is_suppressed("b@example.org")
        assert again.add_subscriber(Subscriber("c@example.org", source="web"), status="pending")


def test_two_processes_opening_a_fresh_database_together_both_succeed(pg_url: str) -> None:
    errors: list[BaseException] = []
    versions: list[int] = []

    def open_it() -> None:
        try:
            with Store.open(pg_url) as store:
                versions.append(store.schema_version)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(versions)) == 1


def test_an_import_into_a_postgresql_state_counts_new_and_existing_rows(
    pg_url: str, tmp_path
) -> None:
    from newsletter.audience import import_subscribers

    people = tmp_path / "people.csv"
    people.write_text(
        "email,name,topics,format\n" + "".join(f"p{i}@example.org,P {i},,\n" for i in range(7))
    )
    with Store.open(pg_url) as store:
        store.add_subscriber(Subscriber("p3@example.org", source="web"), status="confirmed")
        result = import_subscribers(people, store, ["LLM Reasoning"])
        assert (result.added, result.existing, result.problems) == (6, 1, [])
        again = import_subscribers(people, store, ["LLM Reasoning"])
        assert (again.added, again.existing) == (0, 7)
        assert len(store.confirmed_subscribers()) == 7
