"""Measure topic rules against papers labelled by hand: `newsletter topics eval`.

A labelled file is JSON Lines, or a JSON list, of papers (the fields `newsletter papers` reads)
each with a `topic`: the topic a reader expects, or "Other". Accuracy is the share of papers the
rules put in their labelled topic; macro-F1 averages the F1 of every topic that is labelled or
assigned at least once (Other included, as scikit-learn's `f1_score(average="macro")` does);
the Other rate is the share of papers the rules leave in Other.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.errors import SourceError
from newsletter.models import OTHER, Assignment, Paper
from newsletter.sources.files import paper_from_item

MAX_CONFUSIONS = 10
EXAMPLES = 2


@dataclass(frozen=True)
class Labelled:
    paper: Paper
    topic: str


def read_labelled(path: str | Path, topics: Sequence[str]) -> list[Labelled]:
    """Read a labelled file; every `topic` must be one of `topics` or Other."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SourceError(f"{name}: cannot read ({e.strerror}); give a labelled JSONL file") from e
    items = _items(text, name)
    known = {t.casefold(): t for t in [*topics, OTHER]}
    out: list[Labelled] = []
    for where, item in items:
        if not isinstance(item, dict):
            raise SourceError(f"{name}: {where}: expected an object with `title` and `topic`")
        label = item.get("topic")
        if not isinstance(label, str) or not label.strip():
            raise SourceError(
                f"{name}: {where}: no `topic`; give each paper the topic you expect (or {OTHER})"
            )
        topic = known.get(label.strip().casefold())
        if topic is None:
            raise SourceError(
                f"{name}: {where}: topic '{label}' is not in the config; use one of "
                + ", ".join(f"'{t}'" for t in [*topics, OTHER])
            )
        out.append(Labelled(paper_from_item(item, name, where), topic))
    if not out:
        raise SourceError(f"{name}: no labelled papers; expected one JSON object per line")
    return out


def _items(text: str, name: str) -> list[tuple[str, Any]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise SourceError(
                        f"{name}: line {number}: not valid JSON at column {e.colno}: {e.msg}"
                    ) from e
        return rows
    if isinstance(doc, dict):
        if not isinstance(doc.get("papers"), list):
            return [("line 1", doc)]  # JSON Lines of one line
        doc = doc["papers"]
    if not isinstance(doc, list):
        raise SourceError(f"{name}: expected JSON Lines or a JSON list of labelled papers")
    return [(f"item {i}", item) for i, item in enumerate(doc, 1)]


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    macro_f1: float
    other_rate: float
    n: int
    per_topic: dict[str, dict[str, float | int]]
    confusions: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "other_rate": round(self.other_rate, 4),
            "n": self.n,
            "per_topic": self.per_topic,
            "confusions": self.confusions,
        }


def evaluate(
    labelled: Sequence[Labelled], assignments: Sequence[Assignment], topics: Sequence[str]
) -> Evaluation:
    """Compare each paper's primary topic with its label."""
    pairs = [(x.topic, a.topic) for x, a in zip(labelled, assignments, strict=True)]
    n = len(pairs)
    expected = Counter(e for e, _ in pairs)
    got = Counter(g for _, g in pairs)
    right = Counter(e for e, g in pairs if e == g)
    per_topic: dict[str, dict[str, float | int]] = {}
    f1s = []
    for topic in [*topics, OTHER]:
        if not expected[topic] and not got[topic]:
            continue
        precision = right[topic] / got[topic] if got[topic] else 0.0
        recall = right[topic] / expected[topic] if expected[topic] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        f1s.append(f1)
        per_topic[topic] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "labelled": expected[topic],
            "assigned": got[topic],
        }
    titles: dict[tuple[str, str], list[str]] = defaultdict(list)
    for x, (e, g) in zip(labelled, pairs, strict=True):
        if e != g:
            titles[e, g].append(x.paper.title)
    order = sorted(titles.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    confusions = [
        {"expected": e, "got": g, "count": len(ts), "examples": ts[:EXAMPLES]}
        for (e, g), ts in order[:MAX_CONFUSIONS]
    ]
    return Evaluation(
        accuracy=sum(right.values()) / n,
        macro_f1=sum(f1s) / len(f1s) if f1s else 0.0,
        other_rate=got[OTHER] / n,
        n=n,
        per_topic=per_topic,
        confusions=confusions,
    )


def evaluation_table(ev: Evaluation) -> str:
    """The evaluation for a terminal: totals, a row per topic, the most frequent confusions."""
    from newsletter.report import table

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
