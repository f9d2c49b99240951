"""Word forms for keyword matching: regular plurals, acronyms written in capitals, table keys.

This module imports nothing of the package: the engine's helpers import it, at the bottom of the
import graph.
"""

from __future__ import annotations

import math
import re

TERM_WORD = re.compile(r"[^\W_]+")  # a word of a term: letters and digits

# Words that end in "s" but are not plurals; without them "news" would also match "new".
UNCOUNTABLE = frozenset({"news", "series", "species"})
NOT_PLURAL = UNCOUNTABLE | {"bias", "gas", "lens", "atlas", "canvas", "alias", "chaos", "thesis"}


def singular(word: str) -> str:
    """Undo a regular English plural ("strategies" -> "strategy"); leave other words alone."""
    if len(word) < 4 or not word.endswith("s") or word in NOT_PLURAL:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ics")):
        return word
    return word[:-1]


def forms(word: str) -> set[str]:
    """Return the spellings a keyword word matches: itself, its singular and its plural."""
    if word in UNCOUNTABLE or not word[-1:].isalpha():
        return {word}
    base = singular(word)
    found = {word, base}
    if base.endswith("y") and len(base) > 2 and base[-2] not in "aeiou":
        found.add(base[:-1] + "ies")
    elif base.endswith("is") and len(base) > 3:
        found.add(base[:-2] + "es")
    elif base.endswith(("s", "x", "z", "ch", "sh")):
        found.add(base + "es")
    else:
        found.add(base + "s")
    return found


def acronym(word: str) -> str | None:
    """Return the acronym a word is written as ("LLMs" -> "LLM", "GSM8K"), or None.

    A word is an acronym when it has at least two letters and all of them are capitals, not
    counting a plural "s" at the end; "CoT", "LoRA" and "3D" are not.
    """
    core = word[:-1] if word.endswith("s") else word
    letters = [c for c in core if c.isalpha()]
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return core
    return None


def fold(word: str) -> str:
    """A word as the document-frequency table keys it: an acronym's letters, else its singular,
    in lower case ("LLMs" -> "llm", "Strategies" -> "strategy")."""
    core = acronym(word)
    return core.lower() if core is not None else singular(word.lower())


def term_key(keyword: str) -> str:
    """Normalise a keyword or phrase to its table key: lower case, singular words, one space."""
    return " ".join(fold(w) for w in TERM_WORD.findall(keyword))


# Words that say nothing of a paper's topic (for learned keywords and suggestions).
STOP_WORDS = frozenset(
    re.findall(
        r"\w+",
        """a about above across after again against all also although am among an and any are
        as at be because been before being below between both but by can could did do does
        doing done down during each either et etc few for from further had has have having
        here how however if in into is it its itself just may might more most much must no nor
        not of off on once one only or other our ours out over own per same several should
        since so some such than that the their them then there these they this those three
        through thus to too two under until up upon us use used uses using very via was we
        were what when where whether which while who whom whose why will with within without
        would yet you your paper papers propose proposed present show shows shown approach
        method methods result results based new novel work study existing different various
        well""",
    )
)

# A clause boundary: punctuation but hyphens (a term never runs across one).
CLAUSE = re.compile(r"[^\w\s\-\u2010\u2011]+")

PRIOR = 500.0  # total pseudo-count of the informative prior of the log-odds


def log_odds_z(
    y_t: float, y_r: float, total: float, mass_t: float, mass_r: float, *, prior: float = PRIOR
) -> float:
    """The z-score of a term's log-odds in a topic against the rest (informative prior).

    `y_t` and `y_r` count the term in the topic and the rest, `total` in all (its prior share is
    `total / (mass_t + mass_r)`); `mass_t` and `mass_r` count every term in each part.
    """
    alpha = prior * total / (mass_t + mass_r)
    delta = math.log((y_t + alpha) / (mass_t + prior - y_t - alpha)) - math.log(
        (y_r + alpha) / (mass_r + prior - y_r - alpha)
    )
    return delta / math.sqrt(1 / (y_t + alpha) + 1 / (y_r + alpha))
