"""Who gets which variant: the audience written into the ledger, and the variants it needs.

The whole audience is in the ledger before the first message goes out, so a crash or a second
run resumes from the ledger. A subscriber's variant is the issue's sections they chose, in issue
order, in their format; the orchestrator renders each selection the pending rows need, once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from newsletter.models import Issue, Subscriber

if TYPE_CHECKING:
    from newsletter.store.ledger import Ledger

log = logging.getLogger(__name__)

SKIP = "skip"  # the ledger variant of a subscriber with nothing to receive this week
# Audience rows per ledger insert: bounds the memory a 100,000-row insert would take at once.
ENQUEUE_CHUNK = 5000
Selection = tuple[str, ...] | None  # the sections a subscriber gets, in issue order; None: all


def selection(issue: Issue, topics: frozenset[str] | None) -> Selection:
    """Return the issue's sections a subscriber chose (None when that is every section)."""
    if topics is None:
        return None
    wanted = {t.casefold() for t in topics}
    chosen = tuple(s.topic for s in issue.sections if s.topic.casefold() in wanted)
    return None if len(chosen) == len(issue.sections) and chosen else chosen


def variant_label(sel: Selection, fmt: str) -> str:
    """Return the short ledger name of a variant (`html:all`, `text:3f9a0c12d4e5`)."""
    if sel is None:
        return f"{fmt}:all"
    digest = hashlib.blake2b("\0".join(sel).encode(), digest_size=6).hexdigest()
    return f"{fmt}:{digest}"


@dataclass(frozen=True)
class Batch:
    """The audience of one issue as the ledger holds it, and the selections still to render."""

    issue_id: str
    audience: dict[str, tuple[Subscriber, Selection]]  # by address
    selections: tuple[Selection, ...]  # what the pending rows may need, in first-seen order
    new: int  # rows this call added to the ledger


def enqueue(
    issue: Issue, audience: Iterable[Subscriber], ledger: Ledger, *, send_empty: bool
) -> Batch:
    """Write everyone in `audience` into the ledger (rows already there stay as they are)."""
    by_email: dict[str, tuple[Subscriber, Selection]] = {}
    rows: list[tuple[str, str]] = []
    new = 0
    for sub in audience:
        if sub.email in by_email:
            continue
        sel = selection(issue, sub.topics)
        by_email[sub.email] = (sub, sel)
        empty = sel == () and not send_empty
        rows.append((sub.email, SKIP if empty else variant_label(sel, sub.format)))
        if len(rows) >= ENQUEUE_CHUNK:
            new += ledger.enqueue(issue.id, rows)
            rows.clear()
    new += ledger.enqueue(issue.id, rows)
    # Nothing pending (a repeated run): nothing to render. Otherwise every selection in the
    # audience, since a pending row's subscriber may have changed topics since it was written.
    needed: dict[Selection, None] = {}
    if ledger.counts(issue.id)["pending"]:
        needed = dict.fromkeys(sel for _, sel in by_email.values() if sel != () or send_empty)
    return Batch(issue.id, by_email, tuple(needed), new)
