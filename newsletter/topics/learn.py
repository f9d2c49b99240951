"""Learned keywords: words a topic's clear papers share, learnt from the batch being grouped.

The rules place most papers clearly: one topic scores at least 2 and half again as much as any
other. Among those papers, the words that one topic's papers use much more than the others' (the
weighted log-odds ratio with an informative prior, as `topics suggest` ranks them, on words only)
are that topic's learned keywords for this batch: up to 40 per topic, each used by at least 3 of
its clear papers and twice as common among them as among all papers. Then every contested paper
(two topics or more found by the rules, the best above `min_score`) gets, for each learned
keyword it contains, `learned_weight x specificity` on the topics its rules
found: a learned word can settle a close call between them, never pull a paper out of Other or
into a topic the rules did not touch.

Why: a rule set names a topic by a handful of words; the papers of the topic share many more (an
HCI paper's "participants", "interview", "design"). On the four rule sets of bench/rulesets,
`learned_weight: 0.5` lifted accuracy on the labelled arXiv papers by 1.6 to 4.5 points, Other
unchanged (`python bench/topics.py EVAL --ruleset ...`). It is off by default (`learned_weight:
0`): it costs a pass over the words of the batch (0.3 s of CPU for 3,739 papers, doubling the
time to group them), results then depend on the batch as well as on the rules, and keywords
`topics suggest` proposes add less on top of it (bench/topics_suggest.py).
`newsletter topics explain` lists the learned words that counted, marked "learned".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from newsletter.topics.wordforms import STOP_WORDS, log_odds_z, singular

PER_TOPIC = 40
MIN_PAPERS = 3  # a learned word is used by at least this many of the topic's clear papers
MIN_LIFT = 2.0  # ... and is this many times as common among them as among all papers
CLEAR_SCORE = 2.0  # a clear paper's best topic scores at least this
CLEAR_RATIO = 1.5  # ... and this many times the runner-up
_WORD = re.compile(r"[^\W\d_][^\W_]+")
_ASCII_WORD = re.compile(r"[a-z][a-z0-9]+", re.ASCII)  # the same on ASCII text, faster


def words_of(text: str, cache: dict[str, str]) -> set[str]:
    """The content words of a text, lower case and singular (`cache` maps a word to its form)."""
    low = text.lower()
    found = set()
    get = cache.get
    for word in set((_ASCII_WORD if low.isascii() else _WORD).findall(low)):
        form = get(word)
        if form is None:
            form = cache[word] = "" if word in STOP_WORDS or len(word) < 3 else singular(word)
        found.add(form)
    found.discard("")
    return found


def clear_topic(scores: Sequence[tuple[int, float]]) -> int | None:
    """The topic of a paper its rules place clearly ((topic, score) best first), or None."""
    if not scores or scores[0][1] < CLEAR_SCORE:
        return None
    if len(scores) > 1 and scores[0][1] < CLEAR_RATIO * scores[1][1]:
        return None
    return scores[0][0]


def learn(
    papers: Sequence[set[str]], clear: Sequence[int | None], skip: Sequence[Iterable[str]]
) -> dict[str, list[int]]:
    """Return the learned keywords: word -> the topics it was learnt for.

    `papers` are the papers' words, `clear` their clear topic (or None), `skip[t]` the words the
    rules of topic `t` hold already.
    """
    total: Counter[str] = Counter()
    per_topic: dict[int, Counter[str]] = {}
    size: Counter[int] = Counter()
    for words, topic in zip(papers, clear, strict=True):
        if topic is None:
            continue
        total.update(words)
        per_topic.setdefault(topic, Counter()).update(words)
        size[topic] += 1
    n = sum(size.values())
    mass_all = sum(total.values())
    learned: dict[str, list[int]] = {}
    for topic, counts in per_topic.items():
        mass_t = sum(counts.values())
        if mass_t == mass_all:  # one topic only: nothing to tell it from
            continue
        own = set(skip[topic])
        ranked = []
        for word, y_t in counts.items():
            if y_t < MIN_PAPERS or word in own or y_t / size[topic] < MIN_LIFT * total[word] / n:
                continue
            z = log_odds_z(y_t, total[word] - y_t, total[word], mass_t, mass_all - mass_t)
            if z > 0:
                ranked.append((-z, word))
        ranked.sort()
        for _, word in ranked[:PER_TOPIC]:
            learned.setdefault(word, []).append(topic)
    return learned
