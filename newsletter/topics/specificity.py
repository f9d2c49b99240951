"""Keyword specificity: a keyword most papers use says little about a paper's topic.

A keyword's weight is an inverse document frequency on a log-10 scale, drawn towards 1 while the
background is small:

    idf = log10((N + 1) / (df + 1)), at least 0.1;   weight = 1 + (idf - 1) x N / (N + 500)

where `df` of the `N` papers of a background corpus contain the keyword. With a large background
a keyword in one paper of ten weighs about 1 (what every hit weighed before), one in a hundred
about 2, one in half of all papers 0.3. A background of 500 papers keeps half of each weight's
distance from 1, one of 4,000 nine tenths, so that a few hundred papers, or a week that is all
about one thing, cannot swing the weights much. The background is the papers the engine has seen
(the archive of past issues and the batch being grouped, counted with the engine's own matching)
plus the table below, so that a first run has a start.

The bundled table (`newsletter/data/document-frequencies.tsv.gz`, see `resources`) holds, for
words and two-word phrases, how many papers of an unlabelled corpus use them. Words are
lower-cased and made singular, so a keyword finds its count whatever its case or number; a longer
phrase is estimated by its rarest two-word part (an upper bound on its true count). It is built
from the titles and abstracts, and nothing else, of the recorded source responses in
`tests/data/samples/` (the Daily Papers API, the arXiv API and the arXiv listing feeds: 223
papers; the quick-start page is left out, since a run on it counts it as the batch). Rebuild it,
byte for byte, with `python scripts/build_document_frequencies.py`, or build one from your own
papers (see that script). A general-English word-frequency prior (`wordfreq`) was tried in its
place and lost: words rare in English but common in papers ("diffusion", "retrieval",
"segmentation") came out as specific as rare phrases, and on arXiv batches of 83 papers it did
worse than no table at all (by 2 to 6 points, the more so the more it was trusted).
"""

from __future__ import annotations

import gzip
import logging
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from newsletter.resources import document_frequencies_path
from newsletter.topics.wordforms import CLAUSE, TERM_WORD, fold

log = logging.getLogger(__name__)

MIN_WEIGHT = 0.1  # a keyword in nearly every paper still counts for something
# A background of this many papers keeps half of each weight's distance from 1 (see `weight`).
SHRINK_DOCS = 500.0
# Phrases do not run across punctuation: "diffusion. Model" holds no "diffusion model".


def weight(df: float, docs: float, shrink: float = SHRINK_DOCS) -> float:
    """Return the specificity of a term found in `df` of `docs` papers (1 with no background).

    The inverse document frequency is drawn towards 1 by `docs / (docs + shrink)`: a few hundred
    papers, or a skewed week, cannot swing the weights much; a large background keeps them.
    """
    if docs <= 0:
        return 1.0
    idf = max(MIN_WEIGHT, math.log10((docs + 1.0) / (df + 1.0)))
    return 1.0 + (idf - 1.0) * docs / (docs + shrink)


def terms_of(text: str) -> set[str]:
    """Return the table keys a text holds: its words and its two-word phrases."""
    found: set[str] = set()
    for clause in CLAUSE.split(text):
        words = [fold(w) for w in TERM_WORD.findall(clause)]
        found.update(words)
        found.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return found


@dataclass(frozen=True)
class DocumentFrequencies:
    """How many of `docs` papers hold each term (keys from `term_key`)."""

    docs: int
    counts: Mapping[str, int | str] = field(default_factory=dict)  # read tables keep strings

    def df(self, key: str) -> int:
        """The papers holding `key`; a longer phrase is bounded by its rarest two-word part."""
        found = self.counts.get(key)
        if found is not None:
            return int(found)
        words = key.split(" ")
        if len(words) > 2:
            pairs = zip(words, words[1:], strict=False)
            return min(int(self.counts.get(f"{a} {b}", 0)) for a, b in pairs)
        return 0

    @classmethod
    def count(cls, texts: Iterable[str], *, min_df: int = 1) -> DocumentFrequencies:
        """Count the terms of each text once; keep those in at least `min_df` texts."""
        counts: Counter[str] = Counter()
        docs = 0
        for text in texts:
            counts.update(terms_of(text))
            docs += 1
        return cls(docs, {t: n for t, n in sorted(counts.items()) if n >= min_df})

    def write(self, path: Path) -> None:
        """Write the table as gzipped `term<TAB>count` lines under a `#docs<TAB>N` line."""
        lines = [f"#docs\t{self.docs}", *(f"{t}\t{n}" for t, n in self.counts.items())]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))

    @classmethod
    def read(cls, path: Path) -> DocumentFrequencies:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
        head, _, body = text.partition("\n")
        label, _, docs = head.partition("\t")
        if label != "#docs" or not docs.isdigit():
            raise ValueError(f"{path}: not a document-frequency table (first line {head!r})")
        # Counts stay strings until looked up: a run reads a few hundred of 40,000 (15 ms saved).
        cells = body.rstrip("\n").replace("\t", "\n").split("\n")
        return cls(int(docs), dict(zip(cells[0::2], cells[1::2], strict=True)))


@cache
def bundled() -> DocumentFrequencies:
    """The table shipped with the package (empty, with a warning, when it is missing)."""
    try:
        return DocumentFrequencies.read(document_frequencies_path())
    except (OSError, ValueError) as e:
        log.warning("no bundled document frequencies (%s); weights come from the papers alone", e)
        return DocumentFrequencies(0)


class Background:
    """The document frequencies of a matcher's keyword terms: the table plus the papers seen.

    `keys` are the terms' table keys (from `term_key`); `topic_terms` lists, per topic, the terms
    of its keywords. Weights and topic breadths are computed when first asked for after a change.
    """

    def __init__(
        self,
        keys: list[str],
        topic_terms: list[list[int]],
        table: DocumentFrequencies,
        *,
        breadth: float = 0.5,
        shrink: float = SHRINK_DOCS,
    ) -> None:
        self._shrink = shrink
        self._table_df = [table.df(k) for k in keys]
        self._table_docs = table.docs
        self._seen_df = [0] * len(keys)
        self._seen_docs = 0
        self._topic_terms = topic_terms
        self._breadth_power = breadth
        self._weights: list[float] | None = None
        self._breadths: list[float] | None = None

    @property
    def docs(self) -> int:
        return self._table_docs + self._seen_docs

    def add(self, terms: Iterable[int]) -> None:
        """Count one more paper, holding these terms."""
        for i in terms:
            self._seen_df[i] += 1
        self._seen_docs += 1
        self._weights = self._breadths = None

    def df(self, term: int) -> int:
        return self._table_df[term] + self._seen_df[term]

    @property
    def weights(self) -> list[float]:
        """Each term's specificity."""
        if self._weights is None:
            docs = self.docs
            shrink = self._shrink
            self._weights = [weight(self.df(i), docs, shrink) for i in range(len(self._seen_df))]
        return self._weights

    @property
    def breadths(self) -> list[float]:
        """What each topic's summed hits are divided by: how much its keywords cover by chance.

        A topic's mass is the weight a random paper gets from it on average (the sum over its
        keywords of share of papers x weight). A topic of common words ("learning", "model")
        matches every paper a little and would win every close call; dividing by
        (mass / median mass) ** power, kept within 0.5 to 2, puts the topics on one footing.
        """
        if self._breadths is None:
            docs = max(self.docs, 1)
            w = self.weights
            masses = [sum(self.df(i) / docs * w[i] for i in terms) for terms in self._topic_terms]
            positive = [m for m in masses if m > 0]
            middle = statistics.median(positive) if positive else 0.0
            self._breadths = [
                min(2.0, max(0.5, (m / middle) ** self._breadth_power)) if m and middle else 1.0
                for m in masses
            ]
        return self._breadths
