"""Measure topic rules against papers labelled by hand: `newsletter topics eval`.

Each labelled paper (`sources.labelled`) carries the topic a reader expects, or "Other". Accuracy
is the share of papers the rules put in their labelled topic; macro-F1 averages the F1 of every
topic that is labelled or assigned at least once (Other included, as scikit-learn's
`f1_score(average="macro")` does); the Other rate is the share of papers the rules leave in Other.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.models import OTHER, Assignment, Labelled

MAX_CONFUSIONS = 10
EXAMPLES = 2


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
