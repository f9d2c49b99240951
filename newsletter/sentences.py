"""Split an abstract into sentences, for summaries that are whole sentences.

Pure Python on purpose. On the 83 abstracts of the bundled sample, the libraries tried made the
mistakes a summary must not show: sentencex (1.0.32, now a compiled wheel) ends a sentence at
every colon before an enumeration ("... we design two methods:"), syntok (1.4.4, last release
2022) splits "(2) ..." items off mid-sentence and takes 40 times longer, pysbd's last release is
from 2021 and NLTK's punkt needs a model download. Abstracts are a narrow genre: a boundary is
closing punctuation, a space and a capital, unless the word before is an abbreviation ("e.g.",
"et al.", "Fig.") or an initial.
"""

from __future__ import annotations

import re

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
