"""The state store on a real PostgreSQL server: the same behaviour as on SQLite."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from newsletter.models import Subscriber
from newsletter.store import Store

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def test_a_postgresql_state_migrates_and_keeps_the_ledger(pg_url: str) -> None:
    with Store.open(pg_url) as store:
        assert store.schema_version >= 2
        added = store.ledger.enqueue(
            "2026-W48", [("a@example.org", "html:all"), ("b@example.org", "html:all")]
        )
        assert added == 2
        assert store.ledger.enqueue("2026-W48", [("a@example.org", "html:all")]) == 0
        store.ledger.mark_sent("2026-W48", "a@example.org", "<m@example.org>")
        store.ledger.mark_failed(
            "2026-W48", "b@example.org", "550 5.1.1 no such user", permanent=True
        )
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
