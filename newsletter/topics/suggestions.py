"""Suggest keywords from labelled papers: `newsletter topics suggest`.

For each topic, the words and two-word phrases that papers labelled with it use often and the
other papers rarely, ranked by the weighted log-odds ratio with an informative Dirichlet prior
(Monroe, Colaresi and Quinn, "Fightin' Words", 2008): counts are per paper (a term a paper uses
five times counts once), the prior is the term's share of all labelled papers, and the score is
the log-odds difference divided by its standard deviation, so a term seen in 40 papers ranks
above one seen in 4 with the same ratio. A term must be used by at least 3 papers of the topic
and be twice as common among them as among all papers (`python bench/topics_suggest.py` measured
1.5, 2 and 3: 2 helped the held-out half most on balance). Terms the topic's rules already match,
pieces of any topic's phrases ("large language" of "large language model") and common words
are left out.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.models import OTHER, Labelled, Topic
from newsletter.topics.wordforms import (
    CLAUSE,
    STOP_WORDS,
    TERM_WORD,
    acronym,
    log_odds_z,
    singular,
    term_key,
)

MIN_PAPERS = 3  # a suggestion must be used by at least this many papers of its topic
MIN_LIFT = 2.0  # ... and by at least twice the share of its topic's papers as of all papers


@dataclass(frozen=True)
class Suggestion:
    keyword: str
    in_topic: int  # papers labelled with the topic that use it
    elsewhere: int  # other labelled papers that use it
    score: float  # the z-score of the log-odds ratio


def _terms(text: str, shapes: dict[str, Counter[bool]]) -> set[str]:
    """A paper's candidate terms (table keys); note for each word whether it was in capitals."""
    found: set[str] = set()
    for clause in CLAUSE.split(text):
        words = []
        for raw in TERM_WORD.findall(clause):
            core = acronym(raw)
            key = core.lower() if core else singular(raw.lower())
            shapes.setdefault(key, Counter())[core is not None] += 1
            words.append(key)
        found.update(w for w in words if _content(w))
        found.update(
            f"{a} {b}"
            for a, b in zip(words, words[1:], strict=False)
            if _content(a) and _content(b)
        )
    return found


def _content(word: str) -> bool:
    return len(word) > 2 and word not in STOP_WORDS and not word.isdigit()


def _display(term: str, shapes: dict[str, Counter[bool]]) -> str:
    """Write a term as a keyword: a word mostly seen in capitals is written in capitals."""
    words = term.split(" ")
    return " ".join(w.upper() if shapes[w][True] > shapes[w][False] else w for w in words)


def _covered(term: str, rules: Sequence[str]) -> bool:
    """True when a rule keyword is the term or a run of its words (the rule already matches)."""
    padded = f" {term} "
    return any(f" {rule} " in padded for rule in rules)


def _inside(term: str, rules: set[str]) -> bool:
    """True when the term is a rule, or a phrase that is a run of a rule's words."""
    if " " not in term:
        return term in rules
    padded = f" {term} "
    return any(padded in f" {rule} " for rule in rules)


def suggest(
    labelled: Sequence[Labelled], topics: Sequence[Topic], per_topic: int = 10
) -> dict[str, list[Suggestion]]:
    """Return, for each topic, up to `per_topic` new keywords, best first."""
    shapes: dict[str, Counter[bool]] = {}
    docs = [_terms(f"{x.paper.title}\n{x.paper.abstract}", shapes) for x in labelled]
    total: Counter[str] = Counter()
    by_topic: dict[str, Counter[str]] = defaultdict(Counter)
    size: Counter[str] = Counter()
    for x, terms in zip(labelled, docs, strict=True):
        total.update(terms)
        by_topic[x.topic].update(terms)
        size[x.topic] += 1
    mass_all = sum(total.values())
    n_papers = len(labelled)
    # a piece of some topic's phrase ("large language" of "large language model") is no keyword
    every_rule = {term_key(k) for t in topics for k in t.keywords}
    out: dict[str, list[Suggestion]] = {}
    for topic in topics:
        mine = by_topic.get(topic.name)
        if not mine or topic.name == OTHER:
            continue
        rules = [term_key(k) for k in topic.keywords]
        mass_t = sum(mine.values())
        mass_r = mass_all - mass_t
        ranked = []
        for term, y_t in mine.items():
            if y_t < MIN_PAPERS or _covered(term, rules) or _inside(term, every_rule):
                continue
            y_r = total[term] - y_t
            if y_t / size[topic.name] < MIN_LIFT * total[term] / n_papers:
                continue  # not used much more often in the topic than in papers at large
            z = log_odds_z(y_t, y_r, total[term], mass_t, mass_r)
            if z > 0:
                ranked.append((-z, term, y_t, y_r))
        ranked.sort()
        picked: list[Suggestion] = []
        for neg_z, term, y_t, y_r in ranked:
            if len(picked) >= per_topic:
                break
            # a phrase whose word is already picked adds little ("attack" then "adversarial attack")
            if any(_covered(term, [term_key(s.keyword)]) for s in picked):
                continue
            picked.append(Suggestion(_display(term, shapes), y_t, y_r, round(-neg_z, 2)))
        if picked:
            out[topic.name] = picked
    return out
