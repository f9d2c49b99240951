"""Does `topics suggest` help? Learn keywords on one half of the labelled papers, test on the other.

    python bench/topics_suggest.py EVAL.jsonl --ruleset bench/rulesets/arxiv-a.yaml [...]
                                   [--per-topic 10]

EVAL is the labelled arXiv JSONL (see bench/topics.py). Each rule set's topics name the arXiv
categories they stand for in their description; a paper of such a category is labelled with that
topic. The papers are split in two halves by a hash of their id; the top `--per-topic` suggested
keywords of each topic, learned from the labelled papers of one half, are added to the rules, and
the accuracy on the mapped papers of the other half (grouped as one batch, all its papers) is
printed before and after, both ways round. `--learned-weight 0.5` measures on top of the engine's
learned keywords (newsletter/topics/learn.py), which find some of the same words in the unlabelled
batch and so leave less for the suggestions to add.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from topics import categories_of, read_eval  # noqa: E402

from newsletter.config import load_config  # noqa: E402
from newsletter.models import Labelled, Paper, Topic  # noqa: E402
from newsletter.topics import TopicMatcher, assign_all, suggest  # noqa: E402


def half(paper: Paper) -> int:
    return hashlib.sha256(paper.id.encode()).digest()[0] % 2


def accuracy(topics: tuple[Topic, ...], grouping, rows: list[tuple[Paper, str | None]]) -> float:
    matcher = TopicMatcher(topics, grouping)
    got = assign_all([p for p, _ in rows], matcher)
    scored = [(a.topic, want) for a, (_, want) in zip(got, rows, strict=True) if want]
    return sum(g == w for g, w in scored) / len(scored)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("eval", type=Path, metavar="EVAL", help="labelled arXiv papers (JSONL)")
    parser.add_argument("--ruleset", type=Path, action="append", required=True)
    parser.add_argument("--per-topic", type=int, default=10)
    parser.add_argument(
        "--learned-weight",
        type=float,
        help="override grouping.learned_weight (0.5: with learned keywords; 0: the rules alone)",
    )
    args = parser.parse_args()
    rows = read_eval(args.eval)
    for path in args.ruleset:
        config = load_config(path)
        topics = config.topic_rules
        grouping = config.grouping
        if args.learned_weight is not None:
            grouping = grouping.model_copy(update={"learned_weight": args.learned_weight})
        wanted = {c: t.name for t in topics for c in categories_of(t)}
        labelled = [(p, wanted.get(cat)) for p, cat in rows]
        print(f"== {path}")
        for learn in (0, 1):
            train = [Labelled(p, t) for p, t in labelled if t and half(p) == learn]
            test = [(p, t) for p, t in labelled if half(p) != learn]
            found = suggest(train, topics, args.per_topic)
            extended = tuple(
                dataclasses.replace(
                    t, keywords=t.keywords + tuple(s.keyword for s in found.get(t.name, ()))
                )
                for t in topics
            )
            before = accuracy(topics, grouping, test)
            after = accuracy(extended, grouping, test)
            added = sum(len(v) for v in found.values())
            print(
                f"learn on half {learn} ({len(train)} labelled), test on the other"
                f" ({sum(1 for _, t in test if t)} mapped): {before:.1%} -> {after:.1%}"
                f" ({100 * (after - before):+.1f} points, {added} keywords added)"
            )
        for name, ss in list(found.items())[:3]:
            print(f"   e.g. {name}: {', '.join(s.keyword for s in ss)}")


if __name__ == "__main__":
    main()
