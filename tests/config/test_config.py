from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from newsletter.config import HfDailySource, load_config, parse_config
from newsletter.errors import ConfigError
from tests.support.paths import REPO

TOPICS = "topics:\n  - name: Vision\n    keywords: [image, video]\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), "config.yaml")
    return info.value.problems


def test_topics_only_config_is_complete() -> None:
    config = parse_config("topics:\n  - name: Vision\n    keywords: [image, video]\n")
    assert [t.name for t in config.topic_rules] == ["Vision"]
    assert config.topic_rules[0].keywords == ("image", "video")
    assert config.window_days == 7 and config.size_budget_kb == 100
    assert isinstance(config.source_specs[0], HfDailySource)


def test_keywords_not_a_list_names_the_key_and_line() -> None:
    found = problems(
        """\
        topics:
          - name: A
            keywords: [x]
          - name: B
            keywords: [y]
          - name: C
            keywords: image
        """
    )
    assert found == ["config.yaml: topics[2].keywords: expected a list of strings (line 7)"]


def test_every_problem_is_reported_together() -> None:
    found = problems(
        """\
        titel: Weekly
        timezone: Mars/Olympus
        window_days: soon
        sources:
          - hf_dialy: {}
        topics:
          - name: A
            keywords: [x]
            exlude: [y]
        """
    )
    text = "\n".join(found)
    assert len(found) == 5, text
    assert "titel: unknown key (did you mean 'title'?)" in text
    assert "timezone: 'Mars/Olympus' is not an IANA timezone" in text
    assert "window_days: expected a whole number" in text
    assert "sources[0].hf_dialy: unknown source kind (did you mean 'hf_daily'?)" in text
    assert "topics[0].exlude: unknown key (did you mean 'exclude'?)" in text
    assert all(line.startswith("config.yaml: ") for line in found)


def test_invalid_yaml_names_the_line() -> None:
    found = problems("topics:\n  - name: A\n    keywords: [x\n")
    assert len(found) == 1
    assert found[0].startswith("config.yaml:") and "not valid YAML" in found[0]


def test_duplicate_and_reserved_topic_names_are_errors() -> None:
    found = problems(
        """\
        topics:
          - {name: Vision, keywords: [image]}
          - {name: vision, keywords: [video]}
        """
    )
    assert "topic name 'vision' appears twice" in found[0]
    found = problems("topics:\n  - {name: Other, keywords: [x]}\n")
    assert "'Other' is the section for unmatched papers" in found[0]


def test_file_source_resolves_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "config.yaml"
    path.write_text("sources:\n  - file: data/papers.jsonl\ntopics: [{name: A, keywords: [x]}]\n")
    config = load_config(path)
    assert config.source_specs[0].path == str(tmp_path / "conf" / "data" / "papers.jsonl")
    assert config.path == path.resolve()


def test_source_shorthands() -> None:
    config = parse_config(
        "sources: [hf_daily, https://example.org/p.json, papers.yaml]\n"
        "topics: [{name: A, keywords: [x]}]\n",
        base_dir=Path("/srv/nl"),
    )
    kinds = [type(s).__name__ for s in config.source_specs]
    assert kinds == ["HfDailySource", "UrlSource", "FileSource"]
    assert config.source_specs[2].path == "/srv/nl/papers.yaml"


def test_arxiv_source_needs_categories_or_query() -> None:
    found = problems(
        "sources:\n  - arxiv: {announce_types: [new]}\ntopics: [{name: A, keywords: [x]}]\n"
    )
    assert found == [
        "config.yaml: sources[0].arxiv: give `categories` (listing feeds) or `query` (API search)"
        " (line 2)"
    ]


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEWSLETTER_CONFIG", raising=False)
    bundled = load_config()
    assert bundled.path is None
    assert bundled.topics == parse_config((REPO / "config.yaml").read_text()).topics
    (tmp_path / "config.yaml").write_text("title: Local\ntopics: [{name: A, keywords: [x]}]\n")
    assert load_config().title == "Local"
    other = tmp_path / "other.yaml"
    other.write_text("title: Given\ntopics: [{name: A, keywords: [x]}]\n")
    assert load_config(other).title == "Given"


def test_missing_config_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == [
        f"{tmp_path / 'nope.yaml'}: no such file; pass an existing --config FILE"
    ]


def test_default_config_is_valid_and_has_8_to_14_topics() -> None:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    config = parse_config((REPO / "config.yaml").read_text())
    assert 8 <= len(config.topics) <= 14
    assert [t.name for t in config.topic_rules] == [t["name"] for t in data["topics"]]


def test_postal_address_is_a_string_or_null_and_named_with_its_line() -> None:
    assert parse_config("title: x\n").postal_address is None
    config = parse_config("postal_address: Example Lab, 1 Main Street, Berlin\n")
    assert config.postal_address == "Example Lab, 1 Main Street, Berlin"
    assert problems("title: x\npostal_address: '  '\n") == [
        "config.yaml: postal_address: is empty; write your postal address, or null while you "
        "have none (line 2)"
    ]
    assert problems("title: x\npostal_address: [a, b]\n") == [
        "config.yaml: postal_address: expected a string (line 2)"
    ]


def test_brand_defaults_and_a_short_default_email() -> None:
    config = parse_config(TOPICS)
    assert (config.brand.accent, config.brand.logo_url) == ("#0b5cad", None)
    assert (config.max_per_topic, config.top_papers, config.postal_address) == (4, 3, None)
    assert parse_config(TOPICS + "max_per_topic: null\n").max_per_topic is None


def test_brand_problems_are_reported_with_key_line_and_fix() -> None:
    text = TOPICS + 'brand:\n  accent: "#ffcc00"\n  logo_url: http://example.org/logo.png\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    lines = caught.value.problems
    assert any(
        "brand.accent: '#ffcc00' is too light for white text (contrast 1.5:1, needs 4.5:1); "
        "pick a darker colour (line" in line
        for line in lines
    ), lines
    assert any("brand.logo_url:" in line and "https" in line for line in lines), lines
    short = parse_config(TOPICS + 'brand: {accent: "#123"}\n')
    assert short.brand.accent == "#112233"


def test_blocked_domains_are_kept_in_their_idna_form_and_a_bad_one_is_named() -> None:
    config = parse_config("web:\n  blocked_domains: [Bücher.Example, mailinator.com.]\n")
    assert config.web.blocked_domains == ("xn--bcher-kva.example", "mailinator.com")
    with pytest.raises(ConfigError, match=r"web\.blocked_domains: .*'bad domain!' is not a domain"):
        parse_config("web:\n  blocked_domains: ['bad domain!']\n")
