"""Keyword topics: compile every topic's rules once, then score each paper and pick its topics.

Matching. Every keyword, exclude and require word of every topic is compiled into ONE regex, a
character trie, so that at each word start the engine follows one branch instead of trying
hundreds of alternatives; a zero-width lookahead makes every word start a candidate, so
overlapping keywords of different topics all count. Matching is case-insensitive and whole-word:
"RL" never matches "URL", "art" never "start". Within a keyword, a space or hyphen matches any run
of spaces and hyphens ("text-to-image" ~ "text to image"); a gap written with a hyphen may also be
closed up ("fine-tuning" ~ "finetuning"), so write compounds with a hyphen. The last word of a
keyword also matches its regular plural or singular: -s, -es after s/x/z/ch/sh, -y/-ies, -is/-es
("LLM" ~ "LLMs", "strategy" ~ "strategies", "diffusion model" ~ "diffusion models"). Within one
topic a hit inside a longer hit counts once: "large language models" is one hit for a topic that
lists both "large language model" and "language model".

Matching is case-insensitive except for a keyword word written in capitals (an acronym: "CLIP",
"RAG"), which must appear as written, plus a plural "s" ("LLMs"), checked on the original text.

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
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

from newsletter.errors import ConfigError
from newsletter.models import OTHER, Assignment, Hit, Paper, Topic, TopicScore
from newsletter.topics.learn import clear_topic, learn, words_of
from newsletter.topics.specificity import (
    Background,
    DocumentFrequencies,
    bundled,
    term_key,
    weight,
)
from newsletter.topics.wordforms import acronym
from newsletter.topics.wordforms import forms as _forms

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

_KEYWORD, _EXCLUDE, _REQUIRE = 0, 1, 2
_HYPHEN_CHARS = "-\u2010\u2011"  # hyphen-minus, hyphen, non-breaking hyphen
_HYPHENS = re.escape(_HYPHEN_CHARS)
_SEP_CLASS = f"[\\s{_HYPHENS}]+"
_SEP_RUN = re.compile(_SEP_CLASS)
_KEYWORD_PARTS = re.compile(f"({_SEP_CLASS})")
_WORD = re.compile(f"[^\\s{_HYPHENS}]+")


def _variants(keyword: str) -> set[str]:
    """Spell out every text form a keyword matches, words separated by one space."""
    parts = _KEYWORD_PARTS.split(keyword.lower().strip(" \t" + _HYPHEN_CHARS))
    words, gaps = parts[0::2], parts[1::2]
    if not any(c.isalnum() for c in keyword):
        return set()
    # Only the last word inflects ("diffusion models", not "diffusions model"). Hyphen gaps may
    # also be closed up, all together ("fine-tuning" ~ "finetuning"); space gaps may not.
    glues = [[" "] * len(gaps)]
    if any(c in _HYPHEN_CHARS for g in gaps for c in g):
        glues.append(["" if any(c in _HYPHEN_CHARS for c in g) else " " for g in gaps])
    out: set[str] = set()
    for last in _forms(words[-1]):
        spelled = [*words[:-1], last]
        for glue in glues:
            out.add(spelled[0] + "".join(g + w for g, w in zip(glue, spelled[1:], strict=True)))
    return out


def _trie_pattern(keys: Iterable[str]) -> str:
    """Compile keys into one trie-shaped regex; a space in a key matches a separator run."""
    end = ""  # marks a node where a key ends (atoms are never empty)
    root: dict[str, dict] = {}
    for key in keys:
        node = root
        for atom in key:
            node = node.setdefault(atom, {})
        node[end] = {}

    def emit(node: dict[str, dict]) -> str:
        alts = [
            (_SEP_CLASS if atom == " " else re.escape(atom)) + emit(child)
            for atom, child in sorted(node.items())
            if atom != end
        ]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if end in node:  # a key ends here: the rest is optional; greedy, so longest first
            return (f"(?:{body})" if len(alts) == 1 and len(body) > 1 else body) + "?"
        return body

    return emit(root)


class _Owner(NamedTuple):
    """One topic's use of a keyword (a tuple: it is hashed and unpacked in the hot loop)."""

    topic: int  # index into the topic list
    role: int  # _KEYWORD, _EXCLUDE or _REQUIRE
    keyword: str  # as written in the config
    rank: int  # position in its list, to order hits stably
    term: int  # index of the keyword's term in the background: its specificity
    case: re.Pattern[str] | None  # a keyword with a word in capitals: the spelling to check


def _case_check(keyword: str) -> re.Pattern[str] | None:
    """The exact spelling a keyword written with capitals needs ("CLIP" but not "clip"), or None.

    Words in capitals must appear as written (the last one may take a plural "s": "LLMs"); the
    other words were already matched in any case, and gaps may be closed up ("GPT4").
    """
    words = _WORD.findall(keyword.strip(" \t" + _HYPHEN_CHARS))
    if not any(acronym(w) for w in words):
        return None
    parts = []
    for i, word in enumerate(words):
        core = acronym(word)
        if core is None:
            parts.append(f"[^\\s{_HYPHENS}]+")
        elif i == len(words) - 1:
            parts.append(re.escape(core) + "s?")
        else:
            parts.append(re.escape(word))
    return re.compile(f"[\\s{_HYPHENS}]*".join(parts))


def _plain_terms(owners: list[_Owner]) -> frozenset[int] | None:
    """The owners' terms, or None when one of them must check its spelling first."""
    if any(o.case is not None for o in owners):
        return None
    return frozenset(o.term for o in owners)


_FIELDS: tuple[Literal["title", "abstract", "keywords"], ...] = ("title", "abstract", "keywords")
_LEARNED_RANK = 1 << 30  # learned keywords are listed after the rules' own at equal gains
_PaperHits = tuple[list[tuple[int, dict[_Owner, int]]], set[int]]  # per field; terms found
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
        owners: dict[str, list[_Owner]] = {}  # spelling -> who uses it
        terms: dict[tuple[str, str | None], int] = {}  # (table key, exact spelling) -> index
        topic_terms: list[list[int]] = []
        for ti, topic in enumerate(self.topics):
            mine: set[int] = set()
            for role, words in (
                (_KEYWORD, topic.keywords),
                (_EXCLUDE, topic.exclude),
                (_REQUIRE, topic.require),
            ):
                seen: list[set[str]] = []
                for rank, word in enumerate(words):
                    keys = _variants(word)
                    if not keys:
                        raise ConfigError(
                            [f"topics: {topic.name}: '{word}' has no letters or digits; remove it"]
                        )
                    case = _case_check(word)
                    if any(keys <= s or s <= keys for s in seen):  # "LLM" and "LLMs" twice
                        log.debug("topic %s: skipping duplicate keyword %r", topic.name, word)
                        continue
                    seen.append(keys)
                    term = terms.setdefault(
                        (term_key(word), case.pattern if case else None), len(terms)
                    )
                    if role == _KEYWORD:
                        mine.add(term)
                    for key in keys:
                        owners.setdefault(key, []).append(_Owner(ti, role, word, rank, term, case))
            topic_terms.append(sorted(mine))
        self._table = table if table is not None else bundled()
        self.background = Background(
            [key for key, _ in terms], topic_terms, self._table, breadth=breadth
        )
        self._seen_ids: set[str] = set()
        # the words each topic's keywords hold: never learnt again for that topic
        self._rule_words = [
            {w for k in t.keywords for w in term_key(k).split(" ")} for t in self.topics
        ]
        self._learned: dict[str, list[int]] = {}  # word -> topics it was learnt for
        self._learned_gain: dict[str, float] = {}  # word -> what it adds where it counts
        self._word_forms: dict[str, str] = {}
        # A match is the longest spelling at its word start; shorter ones ending on a word
        # boundary inside it are its word prefixes, so a match also credits the spellings it
        # starts with: (length in words, owners), longest first.
        # With them, the terms they stand for when no owner needs its spelling checked.
        self._owners: dict[
            str, tuple[tuple[int, tuple[_Owner, ...], frozenset[int] | None], ...]
        ] = {}
        for key in owners:
            parts = key.split(" ")
            prefixes = ((k, " ".join(parts[:k])) for k in range(len(parts), 0, -1))
            self._owners[key] = tuple(
                (k, tuple(owners[p]), _plain_terms(owners[p])) for k, p in prefixes if p in owners
            )
        pattern = _trie_pattern(owners) if owners else "(?!x)x"
        # Anchored on the non-word character before a word (the text gets a leading space):
        # the regex engine skips ahead to such characters quickly, where a lookbehind would
        # make it try every position of the text.
        self._finder = re.compile(f"\\W(?=({pattern})(?!\\w))")
        # Same matches on ASCII text (most abstracts), found about a fifth faster.
        self._ascii_finder = re.compile(self._finder.pattern, re.ASCII)
        log.debug(
            "compiled %d topics: %d keyword spellings, pattern of %d characters",
            len(self.topics),
            len(owners),
            len(self._finder.pattern),
        )

    def _hits(self, text: str, terms: set[int]) -> dict[_Owner, int]:
        """Count, for every keyword owner, how often it occurs in `text`; add the terms found.

        A hit inside a longer hit of the same topic does not count again: "large language
        models" is one hit for a topic listing both "large language model" and "language model".
        """
        counts: dict[_Owner, int] = {}
        cover: dict[int, int] = {}  # topic -> end of its furthest-reaching keyword hit so far
        get_cover = cover.get
        lowered = text.lower()
        if len(lowered) != len(text):  # "İ" lowers to two characters: keep such ones as they are
            lowered = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        low, text = " " + lowered, " " + text
        finder = self._ascii_finder if low.isascii() else self._finder
        for match in finder.finditer(low):
            raw = match[1]
            start = match.end()
            if raw.isalnum():  # one word: the common case
                key, ends = raw, None
            else:  # a phrase: any separator run stands for one space
                key, ends = _SEP_RUN.sub(" ", raw), [m.end() for m in _WORD.finditer(raw)]
            for k, owners, group_terms in self._owners[key]:
                end = start + (len(raw) if ends is None else ends[k - 1])
                if group_terms is not None:  # no spelling to check: every owner's term is in
                    terms.update(group_terms)
                for owner in owners:
                    case = owner[5]
                    if case is not None:
                        if not case.fullmatch(text, start, end):
                            continue
                        terms.add(owner[4])
                    if owner[1] == _KEYWORD:
                        topic = owner[0]
                        if end <= get_cover(topic, -1):
                            continue
                        cover[topic] = end
                    counts[owner] = counts.get(owner, 0) + 1
        return counts

    def _paper_hits(self, paper: Paper) -> _PaperHits:
        terms: set[int] = set()
        fields = []
        if paper.title:
            fields.append((0, self._hits(paper.title, terms)))
        if paper.abstract:
            fields.append((1, self._hits(paper.abstract, terms)))
        if paper.keywords:  # a ";" between them: a phrase never runs from one into the next
            fields.append((2, self._hits(" ; ".join(paper.keywords), terms)))
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
            w: share * weight(self._table.df(w) + df[w], docs) for w in self._learned
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
        for owners in self._owners.values():
            for _, group, _ in owners:
                for owner in group:
                    if owner.keyword == keyword:
                        return self.background.weights[owner.term] if self._specific else 1.0
        raise KeyError(keyword)

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
        pooled: dict[_Owner, float] = {}  # weighted count of each keyword over the fields
        gains: dict[_Owner, float] = {}
        where: dict[_Owner, list[tuple[int, int]]] = {}  # keyword -> (field, count)
        excluded: dict[int, str] = {}
        required: set[int] = set()
        for fi, counts in found[0]:
            fw = field_weight[fi]
            for owner, n in counts.items():
                role = owner[1]
                if role == _KEYWORD:
                    where.setdefault(owner, []).append((fi, n))
                    if self._pooled:
                        pooled[owner] = pooled.get(owner, 0.0) + fw * n
                    else:
                        gains[owner] = gains.get(owner, 0.0) + fw * count(n)
                elif role == _EXCLUDE:
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


def group(papers: Sequence[Paper], matcher: TopicMatcher) -> dict[str, list[Paper]]:
    """Group papers by topic: topics in config order, empty ones left out, Other last."""
    buckets: dict[str, list[Paper]] = {t.name: [] for t in matcher.topics}
    buckets[OTHER] = []
    for paper, assignment in zip(papers, assign_all(papers, matcher), strict=True):
        for topic in assignment.topics:
            buckets[topic].append(paper)
    return {name: found for name, found in buckets.items() if found}
