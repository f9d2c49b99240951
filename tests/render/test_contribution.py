from __future__ import annotations

import re

import pytest

from newsletter.models import Paper
from newsletter.render.contribution import (
    MAX_SENTENCE,
    contribution_sentence,
    extract,
    split_sentences,
    summarize,
)
from newsletter.sources import read_source

ABSTRACT = (
    "Recent advances in large language models have improved their reasoning. However, they "
    "still fail on long proofs. To address this, we propose ProofWalk, a search method that "
    "checks each step with a verifier. We evaluate it on three benchmarks. ProofWalk improves "
    "accuracy on MiniF2F from 41.2% to 55.0% and outperforms prior methods. Code is available "
    "at https://github.com/example/proofwalk."
)
# The bench's narrow definition (bench/digest.py): "we/this paper propose/introduce/present".
NAMED = re.compile(
    r"\b(?:we|this (?:paper|work|study|report))\s+(?:\w+ly\s+)?(?:propose|introduce|present)s?\b",
    re.I,
)


def test_the_summary_says_what_the_paper_does_then_its_result() -> None:
    assert extract(ABSTRACT, 300) == (
        "To address this, we propose ProofWalk, a search method that checks each step with a "
        "verifier. ProofWalk improves accuracy on MiniF2F from 41.2% to 55.0% and outperforms "
        "prior methods."
    )


def test_less_room_means_fewer_sentences_never_half_of_one() -> None:
    short = extract(ABSTRACT, 120)
    assert short == contribution_sentence(ABSTRACT)  # longer than 120, kept whole
    assert short.endswith("verifier.")


def test_without_a_contribution_the_opening_sentences_stay() -> None:
    text = "Transformers are everywhere. They are large. They are slow to train at scale."
    assert contribution_sentence(text) is None
    assert extract(text, 60) == "Transformers are everywhere. They are large."
    assert extract(text, 10) == "Transformers are everywhere."


def test_a_run_on_text_without_full_stops_gives_no_summary_rather_than_a_cut_one() -> None:
    assert extract("x " * (MAX_SENTENCE + 10), 300) == ""


def test_a_source_summary_stays_first_choice_in_whole_sentences() -> None:
    paper = Paper(id="1", title="T", abstract=ABSTRACT, summary="One line. Two lines here.")
    assert summarize(paper, 300) == "One line. Two lines here."
    assert summarize(paper, 12) == "One line."


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("We use e.g. GPT-4 here. It works.", ["We use e.g. GPT-4 here.", "It works."]),
        ("As Li et al. (2023) did. Done.", ["As Li et al. (2023) did.", "Done."]),
        ("Scores rise, e.g. 17.86 FID. Next.", ["Scores rise, e.g. 17.86 FID.", "Next."]),
        ("See Fig. 3 for more. Then stop.", ["See Fig. 3 for more.", "Then stop."]),
        ("Written by J. Smith. Next one.", ["Written by J. Smith.", "Next one."]),
        ("It is (i). fast, (ii). small. Next.", ["It is (i). fast, (ii). small.", "Next."]),
        ("Why? Because. “Quoted” start.", ["Why?", "Because.", "“Quoted” start."]),
    ],
)
def test_sentences_split_at_full_stops_but_not_after_abbreviations(text, sentences) -> None:
    assert split_sentences(text) == sentences


def test_on_the_sample_most_named_contributions_are_found_and_no_summary_is_cut() -> None:
    papers = read_source("sample")
    having = [p for p in papers if any(NAMED.search(s) for s in split_sentences(p.abstract))]
    found = [p for p in having if NAMED.search(contribution_sentence(p.abstract) or "")]
    assert len(having) == 59
    assert len(found) / len(having) >= 0.9
    for paper in papers:
        summary = summarize(paper, 300)
        assert summary and re.search(r"[.!?][\"')\]]*$", summary), paper.title
        assert all(s in " ".join(paper.abstract.split()) for s in split_sentences(summary))
