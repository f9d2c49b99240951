"""Contribution-first summaries: the sentence that says what a paper does, then its main result.

An abstract usually opens with why the field matters ("Recent advances in ... However, ...") and
only then says what the paper does ("We propose ..."). A reader scanning a digest wants the
second. So the summary is, in the abstract's order:

1. the contribution sentence: the first that says "we propose / introduce / present ..." (or
   "this paper presents ..."), else the first with a weaker cue ("we develop / design / study");
2. if room remains, the result sentence: the one after it with the most evidence of a result
   (numbers, "outperforms", "achieves", "improves", "state-of-the-art");
3. only when no sentence states a contribution, the opening sentences.

A summary is always whole sentences: with less room it has fewer sentences, never half of one.
A source's own summary (the HF `ai_summary`) stays the first choice. Offline and pure Python:
cue words and a sentence splitter, no model.

The splitter is pure Python on purpose. On the 83 abstracts of the bundled sample, the libraries
tried made the mistakes a summary must not show: sentencex (1.0.32, now a compiled wheel) ends a
sentence at every colon before an enumeration ("... we design two methods:"), syntok (1.4.4,
last release 2022) splits "(2) ..." items off mid-sentence and takes 40 times longer, pysbd's
last release is from 2021 and NLTK's punkt needs a model download. Abstracts are a narrow genre:
a boundary is closing punctuation, a space and a capital, unless the word before is an
abbreviation ("e.g.", "et al.", "Fig.") or an initial.

The module imports nothing else of the package (its one use of `Paper` is a type), so the
render stage's import chain stays short.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from newsletter.models import Paper

# -- sentences -------------------------------------------------------------------------------------

# . ! or ? (closing quotes and brackets may follow), spaces, then what can start a sentence.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[A-Z0-9\"'“‘(\[])")
_LAST_WORD = re.compile(r"(\S+)$")
_SPACE = re.compile(r"\s+")
# Lower-cased, without their final period: a period after these rarely ends a sentence.
ABBREVIATIONS = frozenset(
    {
        "e.g",
        "i.e",
        "al",
        "vs",
        "cf",
        "fig",
        "figs",
        "eq",
        "eqs",
        "sec",
        "secs",
        "tab",
        "no",
        "nos",
        "approx",
        "resp",
        "ref",
        "refs",
        "vol",
        "pp",
        "ch",
        "dr",
        "mr",
        "ms",
        "prof",
        "st",
        "inc",
        "ltd",
        "jr",
        "w.r.t",
        "a.k.a",
        "viz",
        "ca",
        "u.s",
        "e.g.,",
    }
)


def normalise(text: str) -> str:
    """Collapse every run of whitespace to one space."""
    return _SPACE.sub(" ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Return the sentences of `text` (whitespace collapsed), in order."""
    text = normalise(text)
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        end = m.start() + 1  # just past the . ! or ?
        if text[m.start()] == "." and not _ends_sentence(text[start:end]):
            continue
        piece = text[start : m.end()].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _ends_sentence(before: str) -> bool:
    """Whether the period that ends `before` ends a sentence (not "e.g." or an initial)."""
    found = _LAST_WORD.search(before)
    if found is None:
        return True
    word = found.group(1).lstrip("([\"'“‘").rstrip(".").lower()
    if word in ABBREVIATIONS:
        return False
    # "J. Smith": a lone capital letter is an initial; a lone digit ends "Section 3." fine.
    return not (len(word) == 1 and word.isalpha())


# -- contribution first ----------------------------------------------------------------------------

# A "sentence" longer than this is a run-on paragraph (no full stops); it is never shown.
MAX_SENTENCE = 520

_WHO = r"(?:we|this\s+(?:paper|work|study|report|article|technical\s+report|thesis))"
_HOW = r"(?:\s+(?:\w+ly|also|then|further|here|first|thus|therefore))*"
_STRONG_VERBS = r"(?:propos|introduc|present|put(?:s)?\s+forward)"
_OTHER_VERBS = (
    r"(?:develop|design|devis|build|construct|creat|releas|describ|contribut|offer|formulat|"
    r"curat|establish|unveil|open-sourc|train|collect|extend|provid|report)"
)
_STUDY_VERBS = r"(?:stud|investigat|explor|analy[sz]|examin|evaluat|conduct|revisit|tackl|address)"
_THING = r"(?:method|approach|framework|model|system|benchmark|dataset)"
_ENDING = r"(?:e|es|ed|ing|s|y|ies|ied)?\b"
_CUES = [
    (3, re.compile(rf"\b{_WHO}{_HOW}\s+{_STRONG_VERBS}{_ENDING}", re.I)),
    (2, re.compile(r"\b(?:here|in\s+this\s+(?:paper|work)),?\s+we\b", re.I)),
    (2, re.compile(rf"\b{_WHO}{_HOW}\s+{_OTHER_VERBS}{_ENDING}", re.I)),
    (2, re.compile(rf"\bour\s+{_THING}\b", re.I)),
    (1, re.compile(rf"\b{_WHO}{_HOW}\s+{_STUDY_VERBS}{_ENDING}", re.I)),
]
_RESULT_WORDS = re.compile(
    r"\b(?:outperform\w*|surpass\w*|achiev\w*|improv\w*|state-of-the-art|sota|"
    r"speed-?ups?|faster|reduc\w*|boost\w*|exceed\w*|beat\w*|gains?|better|superior|"
    r"significantly|competitive|new\s+records?)\b",
    re.I,
)
_NUMBER = re.compile(r"\d+(?:\.\d+)?\s*(?:%|x\b|×|points?\b|pp\b)|\b\d+\.\d+\b|\b\d{2,}\b")
_SHOWS = re.compile(r"\b(?:experiments?|results?|evaluations?)\b.{0,40}\b(?:show|demonstrat)", re.I)
_BOILERPLATE = re.compile(
    r"https?://|\bgithub\b|\b(?:code|data|models?|weights|dataset|project\s+page)\b[^.]{0,60}"
    r"\b(?:available|released|public|open-sourced?)\b|^project\s+page\b|^code\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Sentence:
    index: int
    text: str
    contribution: int  # 0 none, 1 study, 2 develops, 3 proposes / introduces / presents
    result: int  # evidence of a result; 0 none

    @property
    def usable(self) -> bool:
        return len(self.text) <= MAX_SENTENCE


def _classify(index: int, text: str) -> Sentence:
    if _BOILERPLATE.search(text):
        return Sentence(index, text, 0, 0)
    contribution = max((weight for weight, cue in _CUES if cue.search(text)), default=0)
    result = len(_RESULT_WORDS.findall(text)) + 2 * bool(_NUMBER.search(text))
    result += 2 * bool(_SHOWS.search(text))
    return Sentence(index, text, contribution, result)


@functools.lru_cache(maxsize=8192)
def sentences_of(text: str) -> tuple[Sentence, ...]:
    """Split and classify the sentences of an abstract (cached: the size budget asks often)."""
    return tuple(_classify(i, s) for i, s in enumerate(split_sentences(text)))


def contribution_sentence(text: str) -> str | None:
    """Return the sentence that states what the paper does, or None when none does."""
    main = _main(sentences_of(text))
    return main.text if main is not None else None


def _main(sentences: tuple[Sentence, ...]) -> Sentence | None:
    candidates = [s for s in sentences if s.contribution and s.usable]
    if not candidates:
        return None
    best = max(s.contribution for s in candidates)
    return next(s for s in candidates if s.contribution == best)


def extract(text: str, limit: int) -> str:
    """Return the contribution-first summary of `text`: whole sentences, `limit` characters
    where they allow (the first sentence is kept whole even when it is longer)."""
    sentences = sentences_of(text)
    main = _main(sentences)
    if main is None:
        return _opening(sentences, limit)
    chosen = [main]
    results = [s for s in sentences if s.index > main.index and s.result and s.usable]
    if results:
        result = max(results, key=lambda s: (s.result, -s.index))
        if len(main.text) + 1 + len(result.text) <= limit:
            chosen.append(result)
    elif main.index + 1 < len(sentences):
        # No result to add: the sentence right after often says how the contribution works.
        after = sentences[main.index + 1]
        if not _BOILERPLATE.search(after.text) and len(main.text) + 1 + len(after.text) <= limit:
            chosen.append(after)
    return " ".join(s.text for s in sorted(chosen, key=lambda s: s.index))


def _opening(sentences: tuple[Sentence, ...], limit: int) -> str:
    """The first sentences within `limit` (the first one always, unless it is a run-on)."""
    taken: list[str] = []
    size = 0
    for s in sentences:
        if not s.usable or (taken and size + 1 + len(s.text) > limit):
            break
        taken.append(s.text)
        size += len(s.text) + (1 if size else 0)
        if size >= limit:
            break
    return " ".join(taken)


def whole_sentences(text: str, limit: int) -> str:
    """The first sentences of a ready-made summary within `limit` (at least one)."""
    return _opening(sentences_of(text), limit)


def summarize(paper: Paper, limit: int) -> str:
    """Return the paper's summary: the source's own when it has one, else contribution-first."""
    if paper.summary:
        return whole_sentences(paper.summary, limit)
    return extract(paper.abstract or "", limit)
