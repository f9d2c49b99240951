"""Keyword topics: compile every topic's rules once, then score each paper and pick its topics.

How keywords are found in text (whole words, plurals, hyphens, acronyms) is `topics.matching`.

Scoring. A keyword found `t` times in the title, `a` in the abstract and `k` in the source's key
phrases adds `specificity x (1 + ln n)`, `n = title_weight t + abstract_weight a +
keyword_weight k`: the first hit counts fully, repeats add less and less, and one field's hits
and another's pool (a title hit and an abstract hit of one word are one piece of evidence seen
twice, not two). `python bench/topics.py EVAL --ruleset bench/rulesets/arxiv-a.yaml` shows each
step on four rule sets: pooling the fields beats summing per-field logs by 0.7 to 3 points. The
specificity is an inverse document frequency (`topics.specificity`), from a background of the
bundled table, the archive and the batch; a topic's sum is divided by its breadth (how much its
keywords match papers at large, relative to the other topics); learned keywords (see
`topics.learn`) add to topics the rules already found.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from newsletter.errors import ConfigError
from newsletter.models import OTHER, Assignment, Hit, Paper, Topic, TopicScore
from newsletter.topics.learn import clear_topic, learn, words_of
from newsletter.topics.matching import EXCLUDE, KEYWORD, KeywordFinder, Owner
from newsletter.topics.specificity import (
    SHRINK_DOCS,
    Background,
    DocumentFrequencies,
    bundled,
    weight,
)
from newsletter.topics.wordforms import term_key

if TYPE_CHECKING:  # pydantic is slow to import; the CLI has loaded the config by the time we run
    from newsletter.config.sections import GroupingConfig

log = logging.getLogger(__name__)

# How repeated hits of one keyword in one field count (see the module docstring for the choice).
COUNTING: dict[str, Callable[[float], float]] = {
    "pooled-log": lambda x: 1.0 + math.log(x) if x >= 1 else x,
    "log": lambda n: 1.0 + math.log(n),
    "presence": lambda n: 1.0,
    "sqrt": math.sqrt,
    "cap3": lambda n: float(min(n, 3)),
    "linear": float,
}
DEFAULT_COUNTING = "pooled-log"

_FIELDS: tuple[Literal["title", "abstract", "keywords"], ...] = ("title", "abstract", "keywords")
_LEARNED_RANK = 1 << 30  # learned keywords are listed after the rules' own at equal gains
_PaperHits = tuple[list[tuple[int, dict[Owner, int]]], set[int]]  # per field; terms found
# per topic: summed gains, hits (with sort keys), the exclude keyword that hit, requires met,
# and the evidence (the hits' damped counts before any weight: what `min_score` is checked on)
_Tally = tuple[
    dict[int, float],
    dict[int, list[tuple[float, int, int, Hit]]],
    dict[int, str],
    set[int],
    dict[int, float],
]


class TopicMatcher:
    """Topics compiled once: one regex for every keyword, plus the scoring settings.

    The matcher keeps a background of document frequencies (the bundled table, then every paper
    it is shown by `observe` or `assign_all`), from which each keyword's specificity comes.
    """

    def __init__(
        self,
        topics: Sequence[Topic],
        grouping: GroupingConfig | None = None,
        *,
        counting: str = DEFAULT_COUNTING,
        specificity: bool = True,
        breadth: float = 0.5,
        table: DocumentFrequencies | None = None,
        shrink: float = SHRINK_DOCS,
    ) -> None:
        if grouping is None:
            # the defaults, without making every caller of the engine import pydantic
            from newsletter.config.sections import GroupingConfig

            grouping = GroupingConfig()
        self.topics = tuple(topics)
        self.grouping = grouping
        self._names = [t.name for t in self.topics]
        if len({n.casefold() for n in self._names} | {OTHER.casefold()}) != len(self._names) + 1:
            raise ConfigError([f"topics: names must be unique and not '{OTHER}'; rename the topic"])
        self._count = COUNTING[counting]
        self._pooled = counting == "pooled-log"
        self._specific = specificity
        self._requires = frozenset(i for i, t in enumerate(self.topics) if t.require)
        self._keywords = KeywordFinder(self.topics)
        self._table = table if table is not None else bundled()
        self._shrink = shrink
        self.background = Background(
            self._keywords.term_keys,
            self._keywords.topic_terms,
            self._table,
            breadth=breadth,
            shrink=shrink,
        )
        self._seen_ids: set[str] = set()
        # the words each topic's keywords hold: never learnt again for that topic
        self._rule_words = [
            {w for k in t.keywords for w in term_key(k).split(" ")} for t in self.topics
        ]
        self._learned: dict[str, list[int]] = {}  # word -> topics it was learnt for
        self._learned_gain: dict[str, float] = {}  # word -> what it adds where it counts
        self._word_forms: dict[str, str] = {}

    def _paper_hits(self, paper: Paper) -> _PaperHits:
        terms: set[int] = set()
        hits = self._keywords.hits
        fields = []
        if paper.title:
            fields.append((0, hits(paper.title, terms)))
        if paper.abstract:
            fields.append((1, hits(paper.abstract, terms)))
        if paper.keywords:  # a ";" between them: a phrase never runs from one into the next
            fields.append((2, hits(" ; ".join(paper.keywords), terms)))
        return fields, terms

    def observe(self, papers: Iterable[Paper]) -> None:
        """Add papers (the archive, the batch) to the background the weights come from."""
        for paper in papers:
            self._observe(paper, None)

    def _observe(self, paper: Paper, found: _PaperHits | None) -> None:
        if paper.id in self._seen_ids:
            return
        self._seen_ids.add(paper.id)
        self.background.add((found or self._paper_hits(paper))[1])

    def _words(self, paper: Paper) -> set[str]:
        return words_of(f"{paper.title}\n{paper.abstract}", self._word_forms)

    def learn(self, papers: Sequence[Paper], tallies: Sequence[_Tally]) -> list[set[str] | None]:
        """Learn keywords from the papers the rules place clearly (see `topics.learn`).

        Returns, for each paper, the words learned keywords are looked up in: None where they
        cannot count (the paper is not contested, or nothing was learnt).
        """
        self._learned, self._learned_gain = {}, {}
        none: list[set[str] | None] = [None] * len(papers)
        if self.grouping.learned_weight <= 0 or not self._specific or len(papers) < 2:
            return none
        status = [self._rule_status(tally) for tally in tallies]
        words: list[set[str] | None] = [
            self._words(p) if clear is not None or contested else None
            for p, (clear, contested) in zip(papers, status, strict=True)
        ]
        known = [(w, clear) for w, (clear, _) in zip(words, status, strict=True) if w is not None]
        self._learned = learn([w for w, _ in known], [c for _, c in known], self._rule_words)
        if not self._learned:
            return none
        df: Counter[str] = Counter()
        for ws, _ in known:
            df.update(ws & self._learned.keys())
        docs = self._table.docs + len(known)
        share = self.grouping.learned_weight
        self._learned_gain = {
            w: share * weight(self._table.df(w) + df[w], docs, self._shrink) for w in self._learned
        }
        log.debug("learned keywords: %s", self.learned_keywords())
        return [w if contested else None for w, (_, contested) in zip(words, status, strict=True)]

    def learned_keywords(self) -> dict[str, list[str]]:
        """The keywords the last batch taught, per topic name."""
        out: dict[str, list[str]] = {}
        for word, topics in self._learned.items():
            for t in topics:
                out.setdefault(self._names[t], []).append(word)
        return out

    def specificity(self, keyword: str) -> float:
        """The weight of a keyword of the rules (1.0 when specificity is off)."""
        term = self._keywords.term_of(keyword)
        return self.background.weights[term] if self._specific else 1.0

    def scores(self, paper: Paper) -> list[TopicScore]:
        """Score every topic a keyword hit, best first; a ruled-out topic scores 0 and says why."""
        tally = self._tally(self._paper_hits(paper))
        if self._learned and self._rule_status(tally)[1]:
            self._add_learned(tally, self._words(paper))
        return self._rank(tally)

    def _rule_status(self, tally: _Tally) -> tuple[int | None, bool]:
        """What the rules alone say of a paper: the topic they place it in clearly, if any (see
        `topics.learn`), and whether it is contested (two topics or more, one with the evidence
        `min_score` asks): only there do learned keywords count, so they never change what is
        Other.
        """
        score, _, excluded, required, evidence = tally
        breadths = self.background.breadths
        ranked = sorted(
            (
                (s / breadths[ti], ti)
                for ti, s in score.items()
                if ti not in excluded and (ti not in self._requires or ti in required)
            ),
            reverse=True,
        )
        floor = self.grouping.min_score
        contested = len(ranked) > 1 and any(evidence[ti] >= floor for _, ti in ranked)
        return clear_topic([(ti, s) for s, ti in ranked]), contested

    def _rank(self, tally: _Tally) -> list[TopicScore]:
        """The topics' scores, best first, from a tally."""
        score, hits, excluded, required, evidence = tally
        breadths = self.background.breadths if self._specific else None
        ranked = []
        for ti, found_hits in hits.items():
            found_hits.sort(key=_hit_order)
            missing = ti in self._requires and ti not in required
            ruled_out = missing or ti in excluded
            breadth = breadths[ti] if breadths is not None else 1.0
            scored = TopicScore(
                topic=self._names[ti],
                score=0.0 if ruled_out else round(score[ti] / breadth, 6),  # rounded: ties tie
                hits=tuple(h[3] for h in found_hits),
                excluded_by=excluded.get(ti),
                missing_require=missing,
                breadth=round(breadth, 3),
                evidence=0.0 if ruled_out else round(evidence[ti], 6),
            )
            ranked.append((-scored.score, ti, scored))
        ranked.sort(key=_rank_order)  # best first; ties go to the topic listed first
        return [scored for *_, scored in ranked]

    def _tally(self, found: _PaperHits) -> _Tally:
        """Each topic's summed gains, its hits, the exclusions and the requirements met."""
        g = self.grouping
        field_weight = (g.title_weight, g.abstract_weight, g.keyword_weight)
        weights = self.background.weights if self._specific else None
        count = self._count
        pooled: dict[Owner, float] = {}  # weighted count of each keyword over the fields
        gains: dict[Owner, float] = {}
        where: dict[Owner, list[tuple[int, int]]] = {}  # keyword -> (field, count)
        excluded: dict[int, str] = {}
        required: set[int] = set()
        for fi, counts in found[0]:
            fw = field_weight[fi]
            for owner, n in counts.items():
                role = owner[1]
                if role == KEYWORD:
                    where.setdefault(owner, []).append((fi, n))
                    if self._pooled:
                        pooled[owner] = pooled.get(owner, 0.0) + fw * n
                    else:
                        gains[owner] = gains.get(owner, 0.0) + fw * count(n)
                elif role == EXCLUDE:
                    excluded.setdefault(owner[0], owner[2])
                else:
                    required.add(owner[0])
        score: dict[int, float] = {}
        evidence: dict[int, float] = {}
        hits: dict[int, list[tuple[float, int, int, Hit]]] = {}
        for owner, places in where.items():
            w = weights[owner[4]] if weights is not None else 1.0
            raw = count(pooled[owner]) if self._pooled else gains[owner]
            total = w * raw
            ti = owner[0]
            score[ti] = score.get(ti, 0.0) + total
            evidence[ti] = evidence.get(ti, 0.0) + raw
            mass = pooled[owner] if self._pooled else 0.0
            for fi, n in places:
                share = field_weight[fi] * n / mass if mass else 0.0
                gain = total * share if self._pooled else w * field_weight[fi] * count(n)
                hit = Hit(owner[2], _FIELDS[fi], n, w, gain)
                hits.setdefault(ti, []).append((-total, owner[3], fi, hit))
        return score, hits, excluded, required, evidence

    def _add_learned(self, tally: _Tally, words: set[str]) -> None:
        """Add the learned keywords a paper holds to the topics its rules found."""
        score, hits = tally[0], tally[1]
        for word in words & self._learned.keys():
            gain = self._learned_gain[word]
            for ti in self._learned[word]:
                if ti in score:
                    score[ti] += gain
                    hit = Hit(word, "learned", 1, gain / self.grouping.learned_weight, gain)
                    hits[ti].append((-gain, _LEARNED_RANK, 3, hit))

    def assign(self, paper: Paper) -> Assignment:
        """Pick the paper's best topic (and, in multi-topic mode, close seconds), or Other."""
        return self._assign(paper, self.scores(paper))

    def _assign(self, paper: Paper, scores: list[TopicScore]) -> Assignment:
        eligible = [s for s in scores if s.excluded_by is None and not s.missing_require]
        g = self.grouping
        # `min_score` asks for evidence, the hits before weights: specificity says which topic a
        # paper is about, not whether it is about any (a lone hit of a common word still counts)
        qualified = [s for s in eligible if s.evidence >= g.min_score]
        if not qualified:
            runner = eligible[0] if eligible else None
            return Assignment(paper.id, OTHER, (OTHER,), 0.0, (), runner, tuple(scores))
        best = qualified[0]
        topics = [best.topic]
        if g.multi_topic:
            floor = g.secondary_ratio * best.score
            topics += [s.topic for s in qualified[1:] if s.score >= floor][: g.max_topics - 1]
        runner = next((s for s in eligible if s is not best), None)
        return Assignment(
            paper.id, best.topic, tuple(topics), best.score, best.hits, runner, tuple(scores)
        )


def _rank_order(item: tuple[float, int, TopicScore]) -> tuple[float, int]:
    return item[0], item[1]


def _hit_order(item: tuple[float, int, int, Hit]) -> tuple[float, int, int]:
    return item[0], item[1], item[2]  # biggest gain first, then config order, title first


def compile_topics(topics: Sequence[Topic], grouping: GroupingConfig | None = None) -> TopicMatcher:
    """Compile the topic rules once for a run."""
    return TopicMatcher(topics, grouping)


def assign_all(papers: Sequence[Paper], matcher: TopicMatcher) -> list[Assignment]:
    """Assign every paper to its topics, in input order; the batch joins the background first."""
    found = [matcher._paper_hits(p) for p in papers]
    for paper, hits in zip(papers, found, strict=True):
        matcher._observe(paper, hits)
    tallies = [matcher._tally(h) for h in found]
    assignments = []
    for paper, tally, words in zip(papers, tallies, matcher.learn(papers, tallies), strict=True):
        if words is not None:
            matcher._add_learned(tally, words)
        assignments.append(matcher._assign(paper, matcher._rank(tally)))
    other = sum(a.topic == OTHER for a in assignments)
    log.info("grouped %d papers into topics; %d in %s", len(papers), other, OTHER)
    return assignments
