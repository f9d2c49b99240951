"""`topics eval` and `topics suggest`, run as a user runs them, checked against independent sums."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.support.cli import newsletter
from tests.support.paths import DATA

LABELLED = DATA / "sample-topics.jsonl"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return newsletter(*args)


def independent_scores(expected: list[str], got: list[str]) -> tuple[float, float, float]:
    """Accuracy, macro-F1 and Other share, summed from scratch: F1 per label as 2TP/(2TP+FP+FN)
    over every label that is expected or predicted (scikit-learn's macro average)."""
    labels = sorted(set(expected) | set(got))
    f1 = []
    for label in labels:
        tp = sum(1 for e, g in zip(expected, got, strict=True) if e == g == label)
        fp = sum(1 for e, g in zip(expected, got, strict=True) if g == label != e)
        fn = sum(1 for e, g in zip(expected, got, strict=True) if e == label != g)
        f1.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    accuracy = sum(e == g for e, g in zip(expected, got, strict=True)) / len(expected)
    return accuracy, sum(f1) / len(f1), got.count("Other") / len(got)


def test_eval_json_agrees_with_an_independent_scorer_of_the_same_assignments() -> None:
    done = run("topics", "eval", str(LABELLED), "--config", "config.yaml", "--format", "json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"accuracy", "macro_f1", "other_rate", "n", "per_topic", "confusions"}
    assigned = run("topics", "assign", str(LABELLED), "--config", "config.yaml", "--format", "json")
    assert assigned.returncode == 0, assigned.stderr
    got = [item["topic"] for item in json.loads(assigned.stdout)]
    labels = [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines()]
    expected = [x["topic"] for x in labels]
    accuracy, macro_f1, other = independent_scores(expected, got)
    assert result["n"] == len(labels) == 83
    assert abs(result["accuracy"] - accuracy) < 0.005
    assert abs(result["macro_f1"] - macro_f1) < 0.005
    assert abs(result["other_rate"] - other) < 0.005
    reasoning = result["per_topic"]["LLM Reasoning"]
    assert reasoning["labelled"] == expected.count("LLM Reasoning")
    assert reasoning["assigned"] == got.count("LLM Reasoning")
    top = result["confusions"][0]
    pairs = [(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    assert top["count"] == max(pairs.count(p) for p in pairs)
    assert 1 <= len(top["examples"]) <= 2
    assert done.stderr.strip().startswith("eval: 83 papers, accuracy")


def test_eval_table_shows_totals_topics_and_confusions() -> None:
    done = run("topics", "eval", str(LABELLED))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("accuracy ") and "macro-F1" in out and "in Other" in out
    assert "LLM Reasoning" in out and "precision" in out and "recall" in out
    assert "most frequent confusions (expected -> got):" in out and "e.g. " in out


def test_eval_names_the_line_of_an_unknown_topic(tmp_path: Path) -> None:
    bad = tmp_path / "labels.jsonl"
    bad.write_text(
        '{"title": "A", "topic": "Other"}\n{"title": "B", "topic": "Astrology"}\n', encoding="utf-8"
    )
    done = run("topics", "eval", str(bad))
    assert done.returncode != 0
    assert "labels.jsonl: line 2: topic 'Astrology' is not in the config" in done.stderr
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"title": "A"}\n', encoding="utf-8")
    done = run("topics", "eval", str(missing))
    assert done.returncode != 0 and "line 1: no `topic`" in done.stderr


RULES = """\
topics:
  - name: Fish
    keywords: [fish]
  - name: Space
    keywords: [galaxy]
"""


def labelled_set(tmp_path: Path) -> Path:
    rows = []
    for i in range(12):
        rows.append(
            {
                "title": f"Fish study {i}",
                "abstract": f"Zebrafish larvae edited with CRISPR swim {i} laps. The fish grow.",
                "topic": "Fish",
            }
        )
        rows.append(
            {
                "title": f"Sky survey {i}",
                "abstract": f"A quasar behind the galaxy lenses light; redshift {i} of the galaxy.",
                "topic": "Space",
            }
        )
    path = tmp_path / "labelled.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    return path


def test_suggest_yaml_holds_only_new_keywords_in_the_config_shape(tmp_path: Path) -> None:
    path = labelled_set(tmp_path)
    done = run("topics", "suggest", str(path), "--config", str(tmp_path / "rules.yaml"))
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load(done.stdout)
    assert list(doc) == ["topics"]
    by_name = {t["name"]: t["keywords"] for t in doc["topics"]}
    assert all(set(t) == {"name", "keywords"} for t in doc["topics"])
    assert {"zebrafish", "CRISPR"} <= set(by_name["Fish"])  # in capitals as the papers write it
    assert {"quasar", "redshift"} <= set(by_name["Space"])
    assert "fish" not in by_name["Fish"] and "galaxy" not in by_name["Space"]  # already rules
    assert "study" not in by_name["Fish"]  # every paper of Fish, but a stop word
    assert done.stderr.strip().startswith("suggest: ")


def test_suggest_table_and_per_topic(tmp_path: Path) -> None:
    path = labelled_set(tmp_path)
    config = str(tmp_path / "rules.yaml")
    done = run("topics", "suggest", str(path), "--config", config, "--format", "table")
    assert done.returncode == 0, done.stderr
    assert "zebrafish" in done.stdout and "12 of 12" in done.stdout and "0 of 12" in done.stdout
    one = run("topics", "suggest", str(path), "--config", config, "--per-topic", "1")
    doc = yaml.safe_load(one.stdout)
    assert [len(t["keywords"]) for t in doc["topics"]] == [1, 1]
