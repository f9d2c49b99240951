"""Ledger rows for the store tests, written the way a send writes them.

`enqueue` writes an audience as `run` does (`Ledger.write_audience`); `marking` claims every
pending row of an issue as one sender and yields its marks (`store/marks.py`), so the rows a test
sets up went through the same statements as a real send's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from newsletter.store.marks import Marks
from newsletter.store.state import Store


def enqueue(store: Store, issue_id: str, rows: Iterable[tuple[str, ...]]) -> int:
    """Write (email, variant[, name]) rows as pending; return how many were new."""
    audience = ((r[0], r[1], r[2] if len(r) > 2 else None) for r in rows)
    return store.ledger.write_audience(issue_id, audience).new


@contextmanager
def marking(store: Store, issue_id: str) -> Iterator[Marks]:
    """One sender's marks, holding every pending row of the issue (given back at the end)."""
    claims = store.claims(issue_id, lease_seconds=60)
    try:
        while claims.take(1000):
            pass
        yield claims.marks
    finally:
        claims.close()
