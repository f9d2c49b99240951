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
from newsletter.errors import SubscribersError
from newsletter.models import Subscriber
from newsletter.store import Store, Suppression

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
    suppressed_at: str | None = None  # when (ISO 8601, UTC)
    suppressed_detail: str | None = None  # the server's reply to a bounce, or another note


def audience_rows(
    config: Config, subscribers: Path | None = None
) -> tuple[list[AudienceRow], list[str]]:
    """Everyone the program knows of: the file's entries (`subscribers`, else the config's)
    and the state's, with their status (`--subscribers` was checked by its option)."""
    listed = load_subscribers(subscribers or config.subscribers_path, config.topic_names)
    with Store.from_settings(config.state_settings()) as store:
        stored = store.stored_subscribers()
        suppressed = store.suppressions()
        receiving = {s.email for s in audience(listed.subscribers, store)}
    rows: dict[str, AudienceRow] = {}
    for sub in listed.subscribers:
        rows[sub.email] = _row(sub, "confirmed", suppressed, receiving)
    for record in stored:
        sub = record.subscriber
        if record.status == "confirmed" or sub.email not in rows:
            rows[sub.email] = _row(sub, record.status, suppressed, receiving)
    for email, why in suppressed.items():
        if email not in rows:
            rows[email] = AudienceRow(
                email, None, "-", None, "-", "-", why.reason, False, *_when_and_why(why)
            )
    return sorted(rows.values(), key=lambda r: r.email), listed.problems


def _row(
    sub: Subscriber, status: str, suppressed: dict[str, Suppression], receiving: set[str]
) -> AudienceRow:
    topics = None if sub.topics is None else sorted(sub.topics)
    why = suppressed.get(sub.email)
    return AudienceRow(
        sub.email,
        sub.name,
        sub.source,
        topics,
        sub.format,
        status,
        why.reason if why else None,
        sub.email in receiving,
        *_when_and_why(why),
    )


def _when_and_why(why: Suppression | None) -> tuple[str | None, str | None]:
    return (why.at.isoformat(timespec="seconds"), why.detail) if why else (None, None)


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
    text = table(("email", "source", "status", "suppressed", "format", "topics"), body, flex=5)
    stopped = [r for r in rows if r.suppressed]
    if not stopped:
        return text
    why = [
        (r.email, r.suppressed or "", (r.suppressed_at or "")[:10], r.suppressed_detail or "")
        for r in stopped
    ]
    return f"{text}\n\nsuppressed, and why:\n" + table(
        ("email", "reason", "since", "server reply or note"), why, flex=3
    )


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


def next_audience(config: Config, subscribers: Path | None) -> tuple[Path, list[Subscriber]]:
    """The subscribers file and everyone the next issue would reach (the state is not made)."""
    path = subscribers or config.subscribers_path
    listed = load_subscribers(path, config.topic_names)
    store = Store.if_exists(config.state_settings())
    if store is None:
        return path, listed.subscribers
    with store:
        return path, list(audience(listed.subscribers, store))


def preview_audience(config: Config, subscribers: Path | None, sections: Sequence[str]) -> str:
    """Who the previewed issue would reach and in how many variants (the state is not made)."""
    from newsletter.delivery.plan import Selection, chosen_sections  # as `run` chooses them

    path, people = next_audience(config, subscribers)
    variants: set[tuple[Selection, str]] = set()
    nothing = 0
    for sub in people:
        chosen = chosen_sections(sections, sub.topics)
        if chosen == ():
            nothing += 1
            continue
        variants.add((chosen, sub.format))
    return (
        f"audience: {len(people)} subscriber(s) from {path} and the state get "
        f"{len(variants)} variant(s), {nothing} with nothing this week; nothing was sent"
    )


def add(config: Config, email: str, *, name: str | None, topics: str | None, fmt: str) -> str:
    """Add a confirmed subscriber to the state; an earlier suppression is lifted."""
    sub = make_subscriber(email, [t.name for t in config.topics], name=name, topics=topics, fmt=fmt)
    with Store.from_settings(config.state_settings()) as store:
        new = store.add_subscriber(sub, status="confirmed")
        store.confirm_subscriber(sub.email)
        lifted = store.clear_suppression(sub.email)
    what = "added" if new else "updated"
    return f"subscribers: {sub.email} {what}" + (" (unsubscribe lifted)" if lifted else "")


def remove(config: Config, email: str) -> str:
    """Suppress an address: it gets nothing more, whichever list names it."""
    address = _address(email)
    with Store.from_settings(config.state_settings()) as store:
        store.suppress(address, "removed", "newsletter subscribers remove")
    return f"subscribers: {address} removed (suppressed)"


def unbounce(config: Config, emails: Sequence[str], reply: str | None) -> tuple[list[str], str]:
    """Lift bounce suppressions: of `emails`, or of every bounce whose reply contains `reply`.

    Return the addresses lifted and the counts line. Nothing is lifted unless every address
    given is suppressed as a bounce (an unsubscribe is the person's choice, never lifted here).
    """
    with Store.from_settings(config.state_settings()) as store:
        suppressed = store.suppressions()
        wanted = [_address(e) for e in emails]
        if reply is not None:
            needle = reply.casefold()
            wanted += [
                s.email
                for s in suppressed.values()
                if s.reason == "bounced" and needle in (s.detail or "").casefold()
            ]
        for email in wanted:
            why = suppressed.get(email)
            if why is None:
                raise SubscribersError(f"{email} is not suppressed; nothing to lift")
            if why.reason != "bounced":
                raise SubscribersError(
                    f"{email} is suppressed because {why.reason}, not bounced; only the person "
                    "can subscribe again (the web form), or `newsletter subscribers add` it"
                )
        lifted = sorted(set(wanted))
        store.lift_bounces(lifted)
    return lifted, f"unbounce: {len(lifted)} bounce suppression(s) lifted"


def _address(raw: str) -> str:
    try:
        return normalize_email(raw)
    except ValueError as e:
        raise SubscribersError(f"'{raw}' is not a valid address: {e}") from e
