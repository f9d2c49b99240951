"""Where the test data lives, for every test module whatever its folder."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"
SAMPLES = DATA / "samples"
GOLDEN = DATA / "golden"
