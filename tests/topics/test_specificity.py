"""Keyword weights: drawn towards 1 while the background is small; the bundled table's origin."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from newsletter.models import Topic
from newsletter.resources import document_frequencies_path
from newsletter.topics.engine import TopicMatcher
from newsletter.topics.specificity import DocumentFrequencies
from tests.support.paths import REPO


def specificity(keyword: str, df: int, docs: int) -> float:
    table = DocumentFrequencies(docs, {keyword: df})
    return TopicMatcher([Topic("T", (keyword,), (), ())], table=table).specificity(keyword)


def test_a_small_background_draws_the_weights_towards_one() -> None:
    # one paper in a hundred uses "speech" in both backgrounds; only the large one is believed
    large, small = specificity("speech", 1000, 100_000), specificity("speech", 1, 100)
    assert large == pytest.approx(math.log10(100_001 / 1001), abs=0.01)  # about 2
    assert 1.0 < small < 1.2
    # one in two papers: about 0.3 with a large background, close to 1 with a small one
    assert specificity("model", 50_000, 100_000) == pytest.approx(0.3, abs=0.01)
    assert 0.85 < specificity("model", 50, 100) < 1.0


def test_the_bundled_table_is_rebuilt_byte_for_byte_from_the_recorded_samples(tmp_path) -> None:
    out = tmp_path / "table.tsv.gz"
    script = REPO / "scripts" / "build_document_frequencies.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert done.stdout.splitlines()[-1].startswith("223 papers, ")
    assert out.read_bytes() == document_frequencies_path().read_bytes()
