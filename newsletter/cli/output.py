"""Plain-text tables, JSON and YAML for the inspection commands (`papers`, `topics ...`)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from newsletter.errors import NotFoundError
from newsletter.models import OTHER, Assignment, Paper, Topic

if TYPE_CHECKING:
    from newsletter.store.schema import IssueSummary
    from newsletter.topics import Evaluation, Suggestion


def _width() -> int:
    return max(60, shutil.get_terminal_size((120, 24)).columns)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], flex: int) -> str:
    """Columns sized to their content; column `flex` takes what is left of the terminal."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    fixed = sum(w for i, w in enumerate(widths) if i != flex) + 2 * (len(headers) - 1)
    widths[flex] = max(20, min(widths[flex], _width() - fixed))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in rows:
        cells = [_cut(c, widths[i]).ljust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def json_list(items: Sequence[object]) -> str:
    """A JSON list with one item per line: readable, and written by the C encoder (`indent`
    would fall back to the pure-Python one, a third of `topics assign` on 3,739 papers)."""
    if not items:
        return "[]"
    return "[\n" + ",\n".join(json.dumps(item, ensure_ascii=False) for item in items) + "\n]"


def papers_json(papers: Sequence[Paper]) -> str:
    return json_list([p.to_dict() for p in papers])


def papers_table(papers: Sequence[Paper]) -> str:
    rows = [
        (
            p.id,
            "" if p.upvotes is None else str(p.upvotes),
            p.published.date().isoformat() if p.published else "",
            p.title,
        )
        for p in papers
    ]
    return table(("id", "upvotes", "date", "title"), rows, flex=3)


def assignment_dict(paper: Paper, a: Assignment) -> dict[str, object]:
    return {
        "id": paper.id,
        "title": paper.title,
        "topic": a.topic,
        "topics": list(a.topics),
        "score": round(a.score, 3),
        "matched": [
            {"keyword": h.keyword, "field": h.field, "count": h.count, "weight": round(h.weight, 3)}
            for h in a.hits
        ],
    }


def assignments_json(papers: Sequence[Paper], assignments: Sequence[Assignment]) -> str:
    return json_list([assignment_dict(p, a) for p, a in zip(papers, assignments, strict=True)])


def assignments_table(papers: Sequence[Paper], assignments: Sequence[Assignment]) -> str:
    rows = [
        (
            _cut(a.topic, 28),
            f"{a.score:.1f}",
            _cut(", ".join(sorted({h.keyword for h in a.hits})), 36),
            p.title,
        )
        for p, a in zip(papers, assignments, strict=True)
    ]
    return table(("topic", "score", "matched", "title"), rows, flex=3)


def topic_counts_line(topics: Sequence[Topic], assignments: Sequence[Assignment]) -> str:
    """`83 papers: 12 LLM Reasoning, 9 Agents, ..., 4 Other (4.8%)`."""
    counts = Counter(a.topic for a in assignments)
    total = len(assignments)
    parts = [f"{counts[t.name]} {t.name}" for t in topics if counts[t.name]]
    other = counts[OTHER]
    share = f" ({100 * other / total:.1f}%)" if total else ""
    return f"{total} papers: " + ", ".join([*parts, f"{other} {OTHER}{share}"])


def evaluation_table(ev: Evaluation) -> str:
    """`topics eval` for a terminal: totals, a row per topic, the most frequent confusions."""
    lines = [
        f"accuracy {ev.accuracy:.1%}   macro-F1 {ev.macro_f1:.3f}   "
        f"in {OTHER} {ev.other_rate:.1%}   papers {ev.n}",
        "",
    ]
    rows = [
        (
            name,
            f"{m['precision']:.2f}",
            f"{m['recall']:.2f}",
            f"{m['f1']:.2f}",
            str(m["labelled"]),
            str(m["assigned"]),
        )
        for name, m in ev.per_topic.items()
    ]
    lines.append(table(("topic", "precision", "recall", "F1", "labelled", "assigned"), rows, 0))
    if ev.confusions:
        lines += ["", "most frequent confusions (expected -> got):"]
        for c in ev.confusions:
            lines.append(f"  {c['count']:4}  {c['expected']} -> {c['got']}")
            lines += [f"        e.g. {title}" for title in c["examples"]]
    return "\n".join(lines)


def suggestions_yaml(found: dict[str, list[Suggestion]]) -> str:
    """`topics: [{name: ..., keywords: [...]}]`, the new keywords only, ready to paste."""
    import yaml  # only this output needs it

    doc = {"topics": [{"name": n, "keywords": [s.keyword for s in ss]} for n, ss in found.items()]}
    return yaml.safe_dump(
        doc, sort_keys=False, allow_unicode=True, default_flow_style=None
    ).rstrip()


def suggestions_table(found: dict[str, list[Suggestion]], sizes: Counter[str]) -> str:
    """`topics suggest --format table`: each keyword with the papers using it, in and out."""
    n = sum(sizes.values())
    rows = [
        (
            name,
            s.keyword,
            f"{s.in_topic} of {sizes[name]}",
            f"{s.elsewhere} of {n - sizes[name]}",
            f"{s.score:.1f}",
        )
        for name, ss in found.items()
        for s in ss
    ]
    return table(("topic", "keyword", "in topic", "elsewhere", "score"), rows, 1)


def find_paper(papers: Sequence[Paper], key: str) -> Paper:
    """Find a paper by id (with or without arXiv version) or by exact title, case-insensitively."""
    wanted = key.strip().casefold()
    bare = re.sub(r"v\d+$", "", wanted)
    for paper in papers:
        if paper.id.casefold() in (wanted, bare) or paper.title.casefold() == wanted:
            return paper
    raise NotFoundError(
        f"no paper with id or title '{key}' among {len(papers)} papers; "
        "list them with `newsletter papers SOURCE...`"
    )


def issues_json(archived: Sequence[IssueSummary]) -> str:
    items = [
        {
            "id": s.id,
            "title": s.title,
            "start": s.start.isoformat(),
            "end": s.end.isoformat(),
            "papers": s.counts.get("paper_count", 0),
            "ledger": dict(s.ledger),  # "failed" is for good; "pending" includes "to_retry"
            "to_retry": s.to_retry,
        }
        for s in archived
    ]
    return json.dumps(items, ensure_ascii=False, indent=2)


def ledger_line(ledger: dict[str, int], to_retry: int) -> str:
    """`20 sent, 1 failed for good, 3 to retry, 2 pending`: which failures a rerun retries."""
    from newsletter.delivery.report import left_over  # the delivery stage, when a table needs it

    parts = [f"{ledger.get('sent', 0)} sent"] if ledger.get("sent") else []
    if ledger.get("failed"):
        parts.append(f"{ledger['failed']} failed for good")
    parts += left_over(ledger.get("pending", 0), to_retry)
    if ledger.get("skipped"):
        parts.append(f"{ledger['skipped']} skipped")
    return ", ".join(parts) or "not sent"


def issues_table(archived: Sequence[IssueSummary]) -> str:
    rows = [
        (
            s.id,
            f"{s.start:%Y-%m-%d}..{s.end:%Y-%m-%d}",
            str(s.counts.get("paper_count", 0)),
            ledger_line(s.ledger, s.to_retry),
        )
        for s in archived
    ]
    return table(("issue", "dates", "papers", "ledger"), rows, flex=3)
