"""Finding topic keywords in text: the spellings each keyword matches, one regex for them all.

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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from newsletter.errors import ConfigError
from newsletter.models import Topic
from newsletter.topics.wordforms import acronym, term_key
from newsletter.topics.wordforms import forms as _forms

log = logging.getLogger(__name__)

KEYWORD, EXCLUDE, REQUIRE = 0, 1, 2  # what a word is to its topic
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


class Owner(NamedTuple):
    """One topic's use of a keyword (a tuple: it is hashed and unpacked in the hot loop)."""

    topic: int  # index into the topic list
    role: int  # KEYWORD, EXCLUDE or REQUIRE
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


def _plain_terms(owners: list[Owner]) -> frozenset[int] | None:
    """The owners' terms, or None when one of them must check its spelling first."""
    if any(o.case is not None for o in owners):
        return None
    return frozenset(o.term for o in owners)


class KeywordFinder:
    """Every keyword, exclude and require word of the topics, compiled into one regex.

    `term_keys` are the distinct keyword terms (table keys, see `topics.specificity`), and
    `topic_terms[t]` the terms of topic `t`'s keywords: what the background counts.
    """

    def __init__(self, topics: Sequence[Topic]) -> None:
        owners: dict[str, list[Owner]] = {}  # spelling -> who uses it
        terms: dict[tuple[str, str | None], int] = {}  # (table key, exact spelling) -> index
        topic_terms: list[list[int]] = []
        for ti, topic in enumerate(topics):
            mine: set[int] = set()
            for role, words in (
                (KEYWORD, topic.keywords),
                (EXCLUDE, topic.exclude),
                (REQUIRE, topic.require),
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
                    if role == KEYWORD:
                        mine.add(term)
                    for key in keys:
                        owners.setdefault(key, []).append(Owner(ti, role, word, rank, term, case))
            topic_terms.append(sorted(mine))
        self.term_keys = [key for key, _ in terms]
        self.topic_terms = topic_terms
        # A match is the longest spelling at its word start; shorter ones ending on a word
        # boundary inside it are its word prefixes, so a match also credits the spellings it
        # starts with: (length in words, owners), longest first.
        # With them, the terms they stand for when no owner needs its spelling checked.
        self._owners: dict[
            str, tuple[tuple[int, tuple[Owner, ...], frozenset[int] | None], ...]
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
            len(topics),
            len(owners),
            len(self._finder.pattern),
        )

    def hits(self, text: str, terms: set[int]) -> dict[Owner, int]:
        """Count, for every keyword owner, how often it occurs in `text`; add the terms found.

        A hit inside a longer hit of the same topic does not count again: "large language
        models" is one hit for a topic listing both "large language model" and "language model".
        """
        counts: dict[Owner, int] = {}
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
                    if owner[1] == KEYWORD:
                        topic = owner[0]
                        if end <= get_cover(topic, -1):
                            continue
                        cover[topic] = end
                    counts[owner] = counts.get(owner, 0) + 1
        return counts

    def term_of(self, keyword: str) -> int:
        """The term of a keyword as written in the rules (KeyError when no topic has it)."""
        for owners in self._owners.values():
            for _, group, _ in owners:
                for owner in group:
                    if owner.keyword == keyword:
                        return owner.term
        raise KeyError(keyword)
