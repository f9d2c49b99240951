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

Scoring. A keyword found `n` times in a field adds `weight(field) * (1 + ln n)` to its topic: the
first hit counts fully, repeats add less and less (1, 1.69, 2.10, 2.39 ...). On the labelled eval
(`python bench/topics.py --counting all`) every rule that rewards repeats (log, sqrt, capped at 3,
linear) lands within a few tenths of a point of the others and presence-only about a point lower,
so repeats are real evidence; log is kept because it bounds what one word can do (ten "agent"s in
a reinforcement-learning abstract add 3.3, not 10, against a title hit worth 3).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from newsletter.errors import ConfigError
from newsletter.models import OTHER, Assignment, Hit, Paper, Topic, TopicScore

if TYPE_CHECKING:  # pydantic is slow to import; the CLI has loaded the config by the time we run
    from newsletter.config.sections import GroupingConfig

log = logging.getLogger(__name__)

# How repeated hits of one keyword in one field count (see the module docstring for the choice).
COUNTING: dict[str, Callable[[int], float]] = {
    "log": lambda n: 1.0 + math.log(n),
    "presence": lambda n: 1.0,
    "sqrt": math.sqrt,
    "cap3": lambda n: float(min(n, 3)),
    "linear": float,
}
DEFAULT_COUNTING = "log"

_KEYWORD, _EXCLUDE, _REQUIRE = 0, 1, 2
_HYPHEN_CHARS = "-\u2010\u2011"  # hyphen-minus, hyphen, non-breaking hyphen
_HYPHENS = re.escape(_HYPHEN_CHARS)
_SEP_CLASS = f"[\\s{_HYPHENS}]+"
_SEP_RUN = re.compile(_SEP_CLASS)
_KEYWORD_PARTS = re.compile(f"({_SEP_CLASS})")
_WORD = re.compile(f"[^\\s{_HYPHENS}]+")
# Words that end in "s" but are not plurals; without them "news" would also match "new".
_UNCOUNTABLE = frozenset({"news", "series", "species"})
_NOT_PLURAL = _UNCOUNTABLE | {"bias", "gas", "lens", "atlas", "canvas", "alias", "chaos", "thesis"}


def _singular(word: str) -> str:
    """Undo a regular English plural ("strategies" -> "strategy"); leave other words alone."""
    if len(word) < 4 or not word.endswith("s") or word in _NOT_PLURAL:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ics")):
        return word
    return word[:-1]


def _forms(word: str) -> set[str]:
    """Return the spellings a keyword word matches: itself, its singular and its plural."""
    if word in _UNCOUNTABLE or not word[-1:].isalpha():
        return {word}
    base = _singular(word)
    forms = {word, base}
    if base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        forms.add(base[:-1] + "ies")
    elif base.endswith("is") and len(base) > 3:
        forms.add(base[:-2] + "es")
    elif base.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(base + "es")
    else:
        forms.add(base + "s")
    return forms


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


class TopicMatcher:
    """Topics compiled once: one regex for every keyword, plus the scoring settings."""

    def __init__(
        self,
        topics: Sequence[Topic],
        grouping: GroupingConfig | None = None,
        *,
        counting: str = DEFAULT_COUNTING,
    ) -> None:
        if grouping is None:
            from newsletter.config.sections import GroupingConfig

            grouping = GroupingConfig()
        self.topics = tuple(topics)
        self.grouping = grouping
        self._names = [t.name for t in self.topics]
        if len({n.casefold() for n in self._names} | {OTHER.casefold()}) != len(self._names) + 1:
            raise ConfigError([f"topics: names must be unique and not '{OTHER}'; rename the topic"])
        count = COUNTING[counting]
        self._count = count
        self._gain = [0.0] + [count(n) for n in range(1, 65)]  # most counts are small
        self._requires = frozenset(i for i, t in enumerate(self.topics) if t.require)
        self._hit_cache: dict[tuple[str, str, int], Hit] = {}
        owners: dict[str, list[_Owner]] = {}  # spelling -> who uses it
        for ti, topic in enumerate(self.topics):
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
                    if any(keys <= s or s <= keys for s in seen):  # "LLM" and "LLMs" twice
                        log.debug("topic %s: skipping duplicate keyword %r", topic.name, word)
                        continue
                    seen.append(keys)
                    for key in keys:
                        owners.setdefault(key, []).append(_Owner(ti, role, word, rank))
        # A match is the longest spelling at its word start; shorter ones ending on a word
        # boundary inside it are its word prefixes, so a match also credits the spellings it
        # starts with: (length in words, owners), longest first.
        self._owners: dict[str, tuple[tuple[int, tuple[_Owner, ...]], ...]] = {}
        for key in owners:
            spelled = key.split(" ")
            prefixes = ((k, " ".join(spelled[:k])) for k in range(len(spelled), 0, -1))
            self._owners[key] = tuple((k, tuple(owners[p])) for k, p in prefixes if p in owners)
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

    def _hits(self, text: str) -> dict[_Owner, int]:
        """Count, for every keyword owner, how often it occurs in `text`.

        A hit inside a longer hit of the same topic does not count again: "large language
        models" is one hit for a topic listing both "large language model" and "language model".
        """
        counts: dict[_Owner, int] = {}
        cover: dict[int, int] = {}  # topic -> end of its furthest-reaching keyword hit so far
        get_cover = cover.get
        text = " " + text.lower()
        finder = self._ascii_finder if text.isascii() else self._finder
        for match in finder.finditer(text):
            raw = match[1]
            start = match.end()
            if raw.isalnum():  # one word: the common case
                key, ends = raw, None
            else:  # a phrase: any separator run stands for one space
                key, ends = _SEP_RUN.sub(" ", raw), [m.end() for m in _WORD.finditer(raw)]
            for k, owners in self._owners[key]:
                end = start + (len(raw) if ends is None else ends[k - 1])
                for owner in owners:
                    if owner[1] == _KEYWORD:
                        topic = owner[0]
                        if end <= get_cover(topic, -1):
                            continue
                        cover[topic] = end
                    counts[owner] = counts.get(owner, 0) + 1
        return counts

    def _weight(self, n: int) -> float:
        return self._gain[n] if n < len(self._gain) else self._count(n)

    def scores(self, paper: Paper) -> list[TopicScore]:
        """Score every topic a keyword hit, best first; a ruled-out topic scores 0 and says why."""
        score: dict[int, float] = {}
        hits: dict[int, list[tuple[float, int, int, Hit]]] = {}
        excluded: dict[int, str] = {}
        required: set[int] = set()
        g = self.grouping
        fields = (
            (0, "title", self._hits(paper.title) if paper.title else {}, g.title_weight),
            (
                1,
                "abstract",
                self._hits(paper.abstract) if paper.abstract else {},
                g.abstract_weight,
            ),
        )
        for order, field, counts, weight in fields:
            for owner, n in counts.items():
                ti, role, keyword, rank = owner
                if role == _KEYWORD:
                    gain = weight * self._weight(n)
                    score[ti] = score.get(ti, 0.0) + gain
                    hit = self._hit_cache.get((keyword, field, n))
                    if hit is None:  # Hits are frozen, so equal ones can be shared across papers
                        hit = Hit(keyword, field, n)  # type: ignore[arg-type]
                        self._hit_cache[keyword, field, n] = hit
                    hits.setdefault(ti, []).append((-gain, rank, order, hit))
                elif role == _EXCLUDE:
                    excluded.setdefault(ti, keyword)
                else:
                    required.add(ti)
        ranked = []
        for ti, found in hits.items():
            found.sort(key=_hit_order)
            missing = ti in self._requires and ti not in required
            ruled_out = missing or ti in excluded
            scored = TopicScore(
                topic=self._names[ti],
                score=0.0 if ruled_out else round(score[ti], 6),  # rounded: ties stay ties
                hits=tuple(h[3] for h in found),
                excluded_by=excluded.get(ti),
                missing_require=missing,
            )
            ranked.append((-scored.score, ti, scored))
        ranked.sort(key=_rank_order)  # best first; ties go to the topic listed first
        return [scored for *_, scored in ranked]

    def assign(self, paper: Paper) -> Assignment:
        """Pick the paper's best topic (and, in multi-topic mode, close seconds), or Other."""
        scores = self.scores(paper)
        eligible = [s for s in scores if s.excluded_by is None and not s.missing_require]
        g = self.grouping
        if not eligible or eligible[0].score < g.min_score:
            runner = eligible[0] if eligible else None
            return Assignment(paper.id, OTHER, (OTHER,), 0.0, (), runner, tuple(scores))
        best = eligible[0]
        topics = [best.topic]
        if g.multi_topic:
            floor = max(g.min_score, g.secondary_ratio * best.score)
            topics += [s.topic for s in eligible[1:] if s.score >= floor][: g.max_topics - 1]
        runner = eligible[1] if len(eligible) > 1 else None
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
    """Assign every paper to its topics, in input order."""
    assignments = [matcher.assign(p) for p in papers]
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


def _describe_hits(hits: Sequence[Hit], limit: int = 5) -> str:
    shown = [f'"{h.keyword}" in {h.field}' + (f" x{h.count}" if h.count > 1 else "") for h in hits]
    if len(shown) > limit:
        shown = shown[:limit] + [f"{len(hits) - limit} more"]
    return ", ".join(shown)


def explain(paper: Paper, assignment: Assignment) -> str:
    """Say in words why a paper went where it went, and what came second."""
    lines = [f"{paper.id}: {paper.title}"]
    if assignment.topic != OTHER:
        lines.append(f"-> {assignment.topic} (score {assignment.score:.2f})")
        lines.append(f"   because of {_describe_hits(assignment.hits)}")
        if len(assignment.topics) > 1:
            lines.append(f"   also listed under {', '.join(assignment.topics[1:])}")
    elif assignment.scores:
        lines.append(f"-> {OTHER}: no topic that matched scored enough")
    else:
        lines.append(f"-> {OTHER}: no keyword of any topic appears")
    ru = assignment.runner_up
    if ru is not None:
        label = "closest topic" if assignment.topic == OTHER else "runner-up"
        lines.append(
            f"   {label}: {ru.topic} (score {ru.score:.2f}) from {_describe_hits(ru.hits)}"
        )
    elif assignment.topic != OTHER:
        lines.append("   runner-up: none (no other topic matched)")
    for s in assignment.scores:
        if s.excluded_by is not None:
            lines.append(f'   ruled out: {s.topic} (excluded by "{s.excluded_by}")')
        elif s.missing_require:
            lines.append(f"   ruled out: {s.topic} (none of its required words appear)")
    return "\n".join(lines)
