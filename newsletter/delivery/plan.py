"""Who gets which variant: the audience streamed into the ledger, each row naming its variant.

The whole audience is in the ledger before the first message goes out, so a crash or a second
run resumes from the ledger. It is written as it is read, in chunks, so a list of a million
people never sits in memory. A subscriber's variant is the issue's sections they chose, in issue
order, in their format; its label in the ledger row names the sections by their place in the
issue (`html:all`, `text:0.3.5`), so any sender can tell from a row which variant to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from newsletter.models import Issue, Subscriber

if TYPE_CHECKING:
    from newsletter.store.ledger import AudienceRow, Ledger

log = logging.getLogger(__name__)

SKIP = "skip"  # the ledger variant of a subscriber with nothing to receive this week
ABSENT = "no longer in the audience (unsubscribed or removed)"
Selection = tuple[str, ...] | None  # the sections a subscriber gets, in issue order; None: all
Format = Literal["html", "text"]


def selection(issue: Issue, topics: frozenset[str] | None) -> Selection:
    """Return the issue's sections a subscriber chose (None when that is every section)."""
    return chosen_sections([s.topic for s in issue.sections], topics)


def chosen_sections(sections: Sequence[str], topics: frozenset[str] | None) -> Selection:
    """Of an issue's `sections` (in order), those a subscriber's `topics` choose; None: all."""
    if topics is None:
        return None
    wanted = {t.casefold() for t in topics}
    chosen = tuple(topic for topic in sections if topic.casefold() in wanted)
    return None if len(chosen) == len(sections) and chosen else chosen


def variant_label(issue: Issue, sel: Selection, fmt: str) -> str:
    """Return the short ledger name of a variant (`html:all`, `text:0.3.5`, `html:none`)."""
    if sel is None:
        return f"{fmt}:all"
    if not sel:
        return f"{fmt}:none"
    places = {s.topic: i for i, s in enumerate(issue.sections)}
    return f"{fmt}:" + ".".join(str(places[topic]) for topic in sel)


def parse_label(issue: Issue, label: str) -> tuple[Selection, Format] | None:
    """The selection and format a ledger label names; None for `skip` or a label not of this
    issue (a row written by an older version, whose labels were hashes)."""
    fmt, _, which = label.partition(":")
    if fmt not in ("html", "text"):
        return None
    if which == "all":
        return None, fmt  # type: ignore[return-value]
    if which == "none":
        return (), fmt  # type: ignore[return-value]
    try:
        places = [int(p) for p in which.split(".")]
    except ValueError:
        return None
    if not places or any(not 0 <= p < len(issue.sections) for p in places):
        return None
    return tuple(issue.sections[p].topic for p in places), fmt  # type: ignore[return-value]


@dataclass(frozen=True)
class Enqueued:
    """The audience of one issue as written into the ledger."""

    issue_id: str
    audience: int  # people written (the audience of this run)
    new: int  # rows the ledger did not have before
    absent: int  # pending rows of people no longer in the audience, skipped
    selections: tuple[Selection, ...] = ()  # the variants the audience gets, in first-seen order
    seconds: float = 0.0  # the time it took (part of the send's time in the counts line)


def audience_rows(
    issue: Issue,
    audience: Iterable[Subscriber],
    *,
    send_empty: bool,
    seen: dict[Selection, None] | None = None,
) -> Iterator[AudienceRow]:
    """The ledger row of each subscriber: address, variant label, name (`seen` collects the
    selections the rows name)."""
    labels: dict[tuple[frozenset[str] | None, str], str] = {}  # a few topic choices, many people
    for sub in audience:
        key = (sub.topics, sub.format)
        label = labels.get(key)
        if label is None:
            sel = selection(issue, sub.topics)
            empty = sel == () and not send_empty
            label = labels[key] = SKIP if empty else variant_label(issue, sel, sub.format)
            if seen is not None and not empty:
                seen.setdefault(sel)
        yield sub.email, label, sub.name


def enqueue(
    issue: Issue, audience: Iterable[Subscriber], ledger: Ledger, *, send_empty: bool
) -> Enqueued:
    """Stream everyone in `audience` into the ledger, then skip the pending rows of anyone who
    left it since (unsubscribed, or removed from the list)."""
    started = time.perf_counter()
    seen: dict[Selection, None] = {}
    rows = audience_rows(issue, audience, send_empty=send_empty, seen=seen)
    written = ledger.write_audience(issue.id, rows)
    absent = ledger.skip_absent(issue.id, written, ABSENT)
    log.info(
        "ledger %s: %d in the audience (%d new), %d no longer in it",
        issue.id,
        written.rows,
        written.new,
        absent,
    )
    seconds = time.perf_counter() - started
    return Enqueued(issue.id, written.rows, written.new, absent, tuple(seen), seconds)
