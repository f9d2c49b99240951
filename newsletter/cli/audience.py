"""`newsletter subscribers`: the whole audience as a person sees it, and changes to the state."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience import audience, load_subscribers, make_subscriber, normalize_email
from newsletter.cli.output import table
from newsletter.errors import NotFoundError, SubscribersError
from newsletter.models import Subscriber
from newsletter.store import Store

if TYPE_CHECKING:
    from newsletter.config import Config


@dataclass(frozen=True)
class AudienceRow:
    email: str
    name: str | None
    source: str  # file | web | cli
    topics: list[str] | None  # None: all topics
    format: str
    status: str  # confirmed | pending (the hand-written file counts as confirmed)
    suppressed: str | None  # the suppression reason, if any
    receives: bool  # in the audience of the next send


def audience_rows(
    config: Config, subscribers: Path | None = None
) -> tuple[list[AudienceRow], list[str]]:
    """Everyone the program knows of: the file's entries (`subscribers`, else the config's)
    and the state's, with their status."""
    if subscribers is not None and not subscribers.is_file():
        raise NotFoundError(f"{subscribers}: no such subscribers file; check --subscribers")
    listed = load_subscribers(subscribers or config.subscribers_path, config.topic_names)
    with Store.from_config(config) as store:
        stored = store.stored_subscribers()
        suppressed = store.suppression_reasons()
        receiving = {s.email for s in audience(listed.subscribers, store)}
    rows: dict[str, AudienceRow] = {}
    for sub in listed.subscribers:
        rows[sub.email] = _row(sub, "confirmed", suppressed, receiving)
    for record in stored:
        sub = record.subscriber
        if record.status == "confirmed" or sub.email not in rows:
            rows[sub.email] = _row(sub, record.status, suppressed, receiving)
    for email, reason in suppressed.items():
        if email not in rows:
            rows[email] = AudienceRow(email, None, "-", None, "-", "-", reason, False)
    return sorted(rows.values(), key=lambda r: r.email), listed.problems


def _row(
    sub: Subscriber, status: str, suppressed: dict[str, str], receiving: set[str]
) -> AudienceRow:
    topics = None if sub.topics is None else sorted(sub.topics)
    return AudienceRow(
        sub.email,
        sub.name,
        sub.source,
        topics,
        sub.format,
        status,
        suppressed.get(sub.email),
        sub.email in receiving,
    )


def rows_json(rows: Sequence[AudienceRow]) -> str:
    return json.dumps([asdict(r) for r in rows], ensure_ascii=False, indent=2)


def rows_table(rows: Sequence[AudienceRow]) -> str:
    body = [
        (
            r.email,
            r.source,
            r.status,
            r.suppressed or "",
            r.format,
            "all" if r.topics is None else ", ".join(r.topics),
        )
        for r in rows
    ]
    return table(("email", "source", "status", "suppressed", "format", "topics"), body, flex=5)


def counts_line(rows: Sequence[AudienceRow]) -> str:
    by_source = Counter(r.source for r in rows if r.source != "-")
    sources = ", ".join(f"{n} {s}" for s, n in sorted(by_source.items())) or "none"
    receiving = sum(r.receives for r in rows)
    suppressed = sum(1 for r in rows if r.suppressed)
    pending = sum(1 for r in rows if r.status == "pending" and not r.suppressed)
    return (
        f"subscribers: {receiving} receive the next issue; {pending} pending, "
        f"{suppressed} suppressed ({sources})"
    )


def existing_state(config: Config) -> Store | None:
    """The state store if it exists yet: a look must not create one (as `job.existing_store`,
    without importing the whole pipeline)."""
    state = str(config.state)
    if "://" not in state and not config.resolve(state).exists():
        return None
    return Store.from_config(config)


def preview_audience(config: Config, subscribers: Path | None, sections: Sequence[str]) -> str:
    """Who the previewed issue would reach and in how many variants (the state is not made)."""
    if subscribers is not None and not subscribers.is_file():
        raise NotFoundError(f"{subscribers}: no such subscribers file; check --subscribers")
    path = subscribers or config.subscribers_path
    listed = load_subscribers(path, config.topic_names)
    store = existing_state(config)
    try:
        people = audience(listed.subscribers, store) if store is not None else listed.subscribers
    finally:
        if store is not None:
            store.close()
    variants: set[tuple[tuple[str, ...] | None, str]] = set()
    nothing = 0
    for sub in people:
        wanted = None if sub.topics is None else {t.casefold() for t in sub.topics}
        chosen = tuple(s for s in sections if wanted is None or s.casefold() in wanted)
        if not chosen:
            nothing += 1
            continue
        variants.add((None if len(chosen) == len(sections) else chosen, sub.format))
    return (
        f"audience: {len(people)} subscriber(s) from {path} and the state get "
        f"{len(variants)} variant(s), {nothing} with nothing this week; nothing was sent"
    )


def add(config: Config, email: str, *, name: str | None, topics: str | None, fmt: str) -> str:
    """Add a confirmed subscriber to the state; an earlier suppression is lifted."""
    sub = make_subscriber(email, [t.name for t in config.topics], name=name, topics=topics, fmt=fmt)
    with Store.from_config(config) as store:
        new = store.add_subscriber(sub, status="confirmed")
        store.confirm_subscriber(sub.email)
        lifted = store.clear_suppression(sub.email)
    what = "added" if new else "updated"
    return f"subscribers: {sub.email} {what}" + (" (unsubscribe lifted)" if lifted else "")


def remove(config: Config, email: str) -> str:
    """Suppress an address: it gets nothing more, whichever list names it."""
    try:
        address = normalize_email(email)
    except ValueError as e:
        raise SubscribersError(f"'{email}' is not a valid address: {e}") from e
    with Store.from_config(config) as store:
        store.suppress(address, "removed", "newsletter subscribers remove")
    return f"subscribers: {address} removed (suppressed)"
