"""Measure keyword topic grouping: accuracy on labelled arXiv papers, Other shares, speed.

    python bench/topics.py EVAL.jsonl [--config config.yaml] [--counting log|...|all] [--runs 7]
                           [--no-cli] [--show GROUP]
    python bench/topics.py EVAL.jsonl --ruleset bench/rulesets/arxiv-a.yaml [--ruleset ...]
                           [--batch-size 83]

EVAL is a JSON Lines file of arXiv papers with `id`, `title`, `abstract` and `primary_category`
(in this project's workspace: ../shared/eval/arxiv-labeled.jsonl; it is not in the repository).

Default mode: "correct" means the assigned topic is one that fits the paper's arXiv primary
category (`FITS` below): a proxy, since a category says where a paper was filed, not what a
digest reader would call it. The same rules also run through a naive baseline (lowercased
substring counts, no word boundaries, no variants, no exclude/require).

`--ruleset` mode: each topic of the rule set stands for the arXiv categories named in its
`description` ("arXiv cs.SD, eess.AS"); a paper of such a category is "mapped", and correct when
it lands in that topic. Prints accuracy and Other share over the mapped papers for the scoring
variants side by side (the engine as it was, each step added, the default), on all the papers
grouped as one batch, or with `--batch-size N` in batches of N (each with a fresh matcher, so the
background is the bundled table and that batch alone: what a first run sees).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.config import GroupingConfig, load_config  # noqa: E402
from newsletter.models import OTHER, Assignment, Paper, Topic  # noqa: E402
from newsletter.sources import read_source  # noqa: E402
from newsletter.topics.engine import (  # noqa: E402
    COUNTING,
    DEFAULT_COUNTING,
    TopicMatcher,
    assign_all,
)
from newsletter.topics.specificity import DocumentFrequencies  # noqa: E402

REASON = "LLM Reasoning"
AGENTS = "Agents & Tool Use"
CODE = "Code & Software Engineering"
LANG = "Language Models & NLP"
MULTI = "Multimodal & Video"
DIFF = "Diffusion & Image Generation"
VISION = "Vision & 3D"
AUDIO = "Speech & Audio"
ROBOT = "Robotics & Reinforcement Learning"
EFFIC = "Efficiency & Compression"
FEWSHOT = "Few-shot, Transfer & Continual Learning"
SAFETY = "Safety, Security & Alignment"
RETR = "Retrieval & Recommendation"
FOUND = "ML Foundations & Science"
ANY = "any topic"  # broad ML categories: every named topic fits, Other does not

# Which topics fit a primary category: (report group, accepted topics). Method topics that cut
# across fields (efficiency, few-shot/transfer, safety) fit the ML application categories too.
_CROSS = {EFFIC, FEWSHOT, SAFETY}
_OFF = {OTHER}
FITS: dict[str, tuple[str, set[str]]] = {
    # general machine learning
    "cs.AI": ("ML (any topic)", {ANY}),
    "cs.LG": ("ML (any topic)", {ANY}),
    "stat.ML": ("ML (any topic)", {ANY}),
    "cs.NE": ("ML (any topic)", {ANY}),
    "cs.MA": ("agents cs.MA", {AGENTS, ROBOT, FOUND, SAFETY}),
    # ML application fields
    "cs.CL": ("language cs.CL", {REASON, AGENTS, CODE, LANG, MULTI, AUDIO, RETR} | _CROSS),
    "cs.CV": ("vision cs.CV eess.IV", {MULTI, DIFF, VISION} | _CROSS),
    "eess.IV": ("vision cs.CV eess.IV", {MULTI, DIFF, VISION} | _CROSS),
    "cs.GR": ("graphics/media cs.GR cs.MM", {DIFF, VISION, MULTI, EFFIC}),
    "cs.MM": ("graphics/media cs.GR cs.MM", {MULTI, DIFF, VISION, AUDIO, RETR} | _CROSS),
    "cs.RO": ("robotics cs.RO", {ROBOT, VISION, AGENTS, MULTI} | _CROSS),
    "cs.SD": ("audio cs.SD eess.AS", {AUDIO, MULTI} | _CROSS),
    "eess.AS": ("audio cs.SD eess.AS", {AUDIO, MULTI} | _CROSS),
    "cs.IR": ("retrieval cs.IR", {RETR, LANG, AGENTS} | _CROSS),
    "cs.SE": ("software cs.SE", {CODE, AGENTS, SAFETY}),
    "cs.CR": ("security cs.CR", {SAFETY, CODE}),
    # computer science outside ML: Other, or the one topic that borders the field
    "cs.GT": ("non-ML CS", {OTHER, FOUND, AGENTS, ROBOT}),
    "cs.IT": ("non-ML CS", {OTHER, FOUND}),
    "cs.CE": ("non-ML CS", {OTHER, FOUND}),
    "cs.CC": ("non-ML CS", {OTHER, FOUND}),
    "cs.DS": ("non-ML CS", {OTHER, FOUND}),
    "cs.DM": ("non-ML CS", {OTHER, FOUND}),
    "cs.CG": ("non-ML CS", {OTHER, FOUND}),
    "cs.AR": ("non-ML CS", {OTHER, EFFIC}),
    "cs.DB": ("non-ML CS", {OTHER, RETR, CODE}),
    "cs.DL": ("non-ML CS", {OTHER, RETR}),
    "cs.PL": ("non-ML CS", {OTHER, CODE}),
    "cs.SI": ("non-ML CS", {OTHER, RETR}),
    "cs.ET": ("non-ML CS", _OFF),
    # mathematics and statistics: Other, or theory & optimization
    "math.OC": ("math/stats", {OTHER, FOUND}),
    "math.NA": ("math/stats", {OTHER, FOUND}),
    "math.ST": ("math/stats", {OTHER, FOUND}),
    "stat.ME": ("math/stats", {OTHER, FOUND}),
    "stat.AP": ("math/stats", {OTHER, FOUND}),
    "math.CO": ("math/stats", _OFF),
}
# Filed in fields too mixed to call (HCI, society, systems, signals): Other share only.
UNSCORED = {"cs.HC", "cs.CY", "cs.DC", "eess.SY", "eess.SP", "q-bio.NC"}
# Everything else (physics, cond-mat, astro, quant-ph, nlin, q-bio, q-fin, econ) belongs in Other.
OFF_TOPIC_GROUP = "physics & other sciences"


def fits(category: str) -> tuple[str, set[str] | None]:
    """Return the report group of a primary category and the topics that fit (None: unscored)."""
    if category in FITS:
        return FITS[category]
    if category in UNSCORED:
        return "unscored (HCI, society, systems, signals)", None
    return OFF_TOPIC_GROUP, {OTHER, FOUND}


def is_correct(topic: str, accepted: set[str]) -> bool:
    return topic != OTHER if ANY in accepted else topic in accepted


class NaiveMatcher:
    """Baseline: lowercased substring counts of the same keywords, same weights, no rules."""

    def __init__(self, topics: Sequence[Topic], grouping: GroupingConfig) -> None:
        self.topics = [(t.name, [k.lower() for k in t.keywords]) for t in topics]
        self.grouping = grouping

    def topic(self, paper: Paper) -> str:
        title, abstract = paper.title.lower(), paper.abstract.lower()
        g = self.grouping
        best, best_score = OTHER, 0.0
        for name, keywords in self.topics:
            score = sum(
                g.title_weight * title.count(k) + g.abstract_weight * abstract.count(k)
                for k in keywords
            )
            if score > best_score:  # strictly greater: ties go to the earlier topic
                best, best_score = name, score
        return best if best_score >= g.min_score else OTHER


def read_eval(path: Path) -> list[tuple[Paper, str]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            rows.append(
                (Paper(id=d["id"], title=d["title"], abstract=d["abstract"]), d["primary_category"])
            )
    return rows


def report_accuracy(rows, engine_topics, naive_topics) -> None:
    groups: dict[str, list[tuple[str, str, set[str] | None]]] = defaultdict(list)
    for (_, cat), t_engine, t_naive in zip(rows, engine_topics, naive_topics, strict=True):
        group, accepted = fits(cat)
        groups[group].append((t_engine, t_naive, accepted))
    print(f"\n{'group':42} {'n':>5} {'engine':>7} {'naive':>7} {'Other%':>7} {'naive Other%':>12}")
    tot: Counter[str] = Counter()
    for group, items in sorted(groups.items()):
        n = len(items)
        other_e = sum(e == OTHER for e, _, _ in items) / n
        other_n = sum(v == OTHER for _, v, _ in items) / n
        if items[0][2] is None:
            acc_e = acc_n = "-"
        else:
            ok_e = sum(a is not None and is_correct(e, a) for e, _, a in items)
            ok_n = sum(a is not None and is_correct(v, a) for _, v, a in items)
            tot["n"] += n
            tot["e"] += ok_e
            tot["v"] += ok_n
            acc_e, acc_n = f"{ok_e / n:.1%}", f"{ok_n / n:.1%}"
        print(f"{group:42} {n:5} {acc_e:>7} {acc_n:>7} {other_e:7.1%} {other_n:12.1%}")
    print(f"{'ALL SCORED':42} {tot['n']:5} {tot['e'] / tot['n']:7.1%} {tot['v'] / tot['n']:7.1%}")


# Scoring variants, from the engine as it was to the default: (label, TopicMatcher options).
VARIANTS: list[tuple[str, dict[str, object]]] = [
    (
        "before (per-field log, no weights)",
        {"counting": "log", "specificity": False, "breadth": 0, "learned_weight": 0},
    ),
    ("+ specificity", {"counting": "log", "breadth": 0, "shrink": 0, "learned_weight": 0}),
    ("+ pooled fields", {"breadth": 0, "shrink": 0, "learned_weight": 0}),
    ("+ breadth 0.5", {"shrink": 0, "learned_weight": 0}),
    ("+ weights drawn towards 1 (default)", {"learned_weight": 0}),
    ("  breadth 0.75", {"breadth": 0.75, "learned_weight": 0}),
    ("  without the bundled table", {"table": DocumentFrequencies(0), "learned_weight": 0}),
    ("  default, one paper at a time", {"one_by_one": True, "learned_weight": 0}),
    ("+ learned keywords (learned_weight 0.5)", {"learned_weight": 0.5}),
    ("  learned_weight 1.0", {"learned_weight": 1.0}),
]


def batches(papers: list[Paper], size: int | None) -> list[list[Paper]]:
    """All the papers as one batch, or batches of `size` in an order set by a hash of the ids
    (mixed fields, as a week's papers are): a first run, with a background of one batch."""
    if not size:
        return [papers]
    order = sorted(papers, key=lambda p: hashlib.sha256(p.id.encode()).hexdigest())
    return [order[i : i + size] for i in range(0, len(order), size)]


def categories_of(topic: Topic) -> list[str]:
    return re.findall(r"\b[a-z][a-z-]*\.[A-Za-z-]+\b", topic.description)


def report_ruleset(path: Path, rows: list[tuple[Paper, str]], batch_size: int | None) -> None:
    """Accuracy and Other share on the papers of the categories the rule set's topics name."""
    config = load_config(path)
    topics = config.topic_rules
    wanted = {c: t.name for t in topics for c in categories_of(t)}
    if not wanted:
        raise SystemExit(f"{path}: no topic names an arXiv category in its description")
    papers = [p for p, _ in rows]
    mapped = [(i, wanted[cat]) for i, (_, cat) in enumerate(rows) if cat in wanted]
    print(f"\n== {path}: {len(topics)} topics, {len(mapped)} of {len(rows)} papers mapped")
    if batch_size:
        print(f"   grouped in batches of {batch_size}, each by a fresh matcher")
    naive = NaiveMatcher(topics, config.grouping)
    got = [naive.topic(papers[i]) for i, _ in mapped]
    ok = sum(g == e for g, (_, e) in zip(got, mapped, strict=True))
    print(
        f"{'naive substring counts':48} accuracy {ok / len(mapped):6.1%}"
        f"  Other {got.count(OTHER) / len(mapped):5.1%}"
    )
    for label, options in VARIANTS:
        opts = dict(options)
        one_by_one = bool(opts.pop("one_by_one", False))
        grouping = config.grouping
        if "learned_weight" in opts:
            grouping = grouping.model_copy(update={"learned_weight": opts.pop("learned_weight")})
        t0 = time.perf_counter()
        by_id: dict[str, str] = {}
        for batch in batches(papers, batch_size):
            matcher = TopicMatcher(topics, grouping, **opts)  # type: ignore[arg-type]
            if one_by_one:
                by_id.update((p.id, matcher.assign(p).topic) for p in batch)
            else:
                by_id.update((a.paper_id, a.topic) for a in assign_all(batch, matcher))
        assigned = [by_id[p.id] for p in papers]
        wall = time.perf_counter() - t0
        ok = sum(assigned[i] == e for i, e in mapped)
        other = sum(assigned[i] == OTHER for i, _ in mapped)
        print(
            f"{label:48} accuracy {ok / len(mapped):6.1%}  Other {other / len(mapped):5.1%}"
            f"  ({wall:.2f} s)"
        )


def timed(fn: Callable[[], object], runs: int) -> tuple[float, float, object]:
    """Run `fn` `runs` times; return the median wall and CPU seconds and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), result


def process_times(args: argparse.Namespace) -> None:
    """Time the import of the engine and `newsletter topics assign EVAL` as whole processes."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-X", "importtime", "-c", "import newsletter.topics.engine"]
    err = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    own = [line for line in err.splitlines() if line.rstrip().endswith("newsletter.topics.engine")]
    import_ms = int(own[-1].split("|")[1]) / 1000 if own else float("nan")
    print(f"import newsletter.topics.engine: {import_ms:.1f} ms (cumulative, fresh process)")
    cli = [sys.executable, "-m", "newsletter", "topics", "assign", str(args.eval)]
    cli += ["--config", str(args.config)]
    walls = []
    for _ in range(3):
        t0 = time.perf_counter()
        done = subprocess.run(cli, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - t0)
        if done.returncode != 0:
            print(f"`newsletter topics assign` failed: {done.stderr.strip()[-300:]}")
            return
    print(f"`newsletter topics assign EVAL` as a process: median {statistics.median(walls):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "eval",
        type=Path,
        metavar="EVAL",
        help="labelled arXiv papers (JSONL with title, abstract, primary_category), for example"
        " ../shared/eval/arxiv-labeled.jsonl",
    )
    parser.add_argument(
        "--ruleset",
        type=Path,
        action="append",
        help="a rule set whose topics name arXiv categories in their description (repeatable)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help="with --ruleset: group the papers in batches of N, as first runs would (default: one)",
    )
    parser.add_argument("--config", type=Path, default=REPO / "config.yaml")
    parser.add_argument("--samples", type=Path, default=REPO / "tests/data/samples")
    parser.add_argument("--counting", default=DEFAULT_COUNTING, choices=[*COUNTING, "all"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process timings")
    parser.add_argument(
        "--show", metavar="GROUP_OR_SAMPLE", help="list a group's papers that land wrong"
    )
    args = parser.parse_args()
    if not args.eval.is_file():
        parser.error(f"{args.eval}: no such file; give the labelled arXiv JSONL as EVAL")
    if args.ruleset:
        rows = read_eval(args.eval)
        for path in args.ruleset:
            report_ruleset(path, rows, args.batch_size)
        return

    config = load_config(args.config)
    topics, grouping = config.topic_rules, config.grouping
    rows = read_eval(args.eval)
    papers = [p for p, _ in rows]
    samples = {
        "Daily Papers page": read_source(str(args.samples / "daily-papers-page.txt")),
        "HF API": read_source(str(args.samples / "hf-daily-papers-api.json")),
    }
    print(
        f"{len(topics)} topics, {sum(len(t.keywords) for t in topics)} keywords;"
        f" eval: {len(papers)} papers from {args.eval}"
    )
    naive = NaiveMatcher(topics, grouping)
    naive_wall, _, naive_topics = timed(lambda: [naive.topic(p) for p in papers], 1)

    for counting in COUNTING if args.counting == "all" else [args.counting]:
        t0 = time.perf_counter()
        matcher = TopicMatcher(topics, grouping, counting=counting)
        compile_ms = (time.perf_counter() - t0) * 1000
        wall, cpu, result = timed(functools.partial(assign_all, papers, matcher), args.runs)
        engine_topics = [a.topic for a in cast("list[Assignment]", result)]
        print(f"\n== counting: {counting}")
        report_accuracy(rows, engine_topics, naive_topics)
        for name, sample in samples.items():
            got = [a.topic for a in assign_all(sample, matcher)]
            nv = [naive.topic(p) for p in sample]
            n_other, n_naive = got.count(OTHER), nv.count(OTHER)
            print(
                f"{name}: {len(sample)} papers, Other {n_other} ({n_other / len(got):.1%});"
                f" naive Other {n_naive} ({n_naive / len(nv):.1%})"
            )
            print("   per topic:", dict(Counter(got).most_common()))
            if args.show == name:
                for p, t in zip(sample, got, strict=True):
                    print(f"   {t[:22]:22} | {p.title[:100]}")
        print(
            f"time to group {len(papers)} papers: median {wall * 1000:.0f} ms wall,"
            f" {cpu * 1000:.0f} ms CPU over {args.runs} runs; compile {compile_ms:.1f} ms"
            f" (naive baseline: {naive_wall * 1000:.0f} ms)"
        )
        if args.show and args.show not in samples:
            for (p, cat), t in zip(rows, engine_topics, strict=True):
                group, accepted = fits(cat)
                if group == args.show and (accepted is None or not is_correct(t, accepted)):
                    print(f"   {cat:10} {t[:22]:22} | {p.title[:90]}")
    print("\nengine topics over the eval:", dict(Counter(engine_topics).most_common()))
    if not args.no_cli:
        process_times(args)


if __name__ == "__main__":
    main()
