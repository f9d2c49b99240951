from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from newsletter.audience import subscribers as subs_mod
from newsletter.audience.subscribers import (
    AddressCache,
    SubscribersError,
    audience,
    import_subscribers,
    load_subscribers,
    normalize_email,
)
from newsletter.config import load_config, parse_config
from newsletter.models import Subscriber
from newsletter.store.state import Store
from tests.support.paths import REPO

TOPICS = ["Robotics", "Vision", "LLM Reasoning"]


def write(tmp_path: Path, text: str, name: str = "subscribers.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run from tmp_path, so problems name files as `subscribers.yaml`, as a user sees them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "state.db") as s:
        yield s


def test_the_c_loader_reads_the_file(tmp_path, monkeypatch) -> None:
    assert subs_mod.LOADER is yaml.CSafeLoader
    used = []

    class Spy(yaml.CSafeLoader):
        def __init__(self, stream):
            used.append(type(self).__mro__[1])
            super().__init__(stream)

    monkeypatch.setattr(subs_mod, "LOADER", Spy)
    result = load_subscribers(write(tmp_path, "- email: a@example.org\n"), TOPICS)
    assert used == [yaml.CSafeLoader]
    assert [s.email for s in result.subscribers] == ["a@example.org"]


def test_the_example_file_loads_cleanly_against_the_default_topics() -> None:
    config = load_config(REPO / "config.yaml")
    result = load_subscribers(REPO / "subscribers.example.yaml", [t.name for t in config.topics])
    assert result.problems == []
    assert 3 <= len(result.subscribers) <= 4
    assert all(s.email.endswith(("@example.org", "@example.com")) for s in result.subscribers)
    assert any(s.topics for s in result.subscribers)  # shows how to pick topics
    assert any(s.format == "text" for s in result.subscribers)


def test_entries_are_read_and_normalised(tmp_path) -> None:
    path = write(
        tmp_path,
        """\
        # a comment
        - email: " Alice@EXAMPLE.org "
          name: Alice A.
        - email: bob@example.com
          topics: [robotics, Vision]
          format: TEXT
        - email: carol@example.org
          topics: all
        - dave@example.com
        - email: erin@example.org
          topics: LLM Reasoning
          name: 2024
        """,
    )
    result = load_subscribers(path, TOPICS)
    assert result.problems == []
    assert result.subscribers == [
        Subscriber("alice@example.org", "Alice A.", None, "html", "file"),
        Subscriber("bob@example.com", None, frozenset({"Robotics", "Vision"}), "text", "file"),
        Subscriber("carol@example.org", None, None, "html", "file"),
        Subscriber("dave@example.com", None, None, "html", "file"),
        Subscriber("erin@example.org", "2024", frozenset({"LLM Reasoning"}), "html", "file"),
    ]


def test_bad_entries_are_reported_by_line_and_skipped(in_tmp) -> None:
    path = write(
        in_tmp,
        """\
        - email: alice@example.org
          name: Alice
        - email: bob@
        - email: carol@example.org
          topics: [Vision, Robotcs]
        - email: Alice@Example.ORG
        - email: dan@example.org
          name: "Dan\\r\\nBcc: everyone@example.org"
        - email: erin@example.org
          format: pdf
        - email: frank@example.org
          topic: [Vision]
        - name: Nobody
        - [not, an, entry]
        - email: gina@example.org
        """,
    )
    result = load_subscribers(path, TOPICS)
    assert result.problems == [
        "subscribers.yaml: line 3: 'bob@' is not a valid address: "
        "There must be something after the @-sign.",
        "subscribers.yaml: line 5: carol@example.org: unknown topic 'Robotcs' "
        "(did you mean 'Robotics'?)",
        "subscribers.yaml: line 6: alice@example.org is listed twice (first on line 1); skipped",
        "subscribers.yaml: line 7: dan@example.org: name contains a line break; "
        "write it on one line",
        "subscribers.yaml: line 9: erin@example.org: format 'pdf' is not html or text",
        "subscribers.yaml: line 12: unknown key 'topic' (did you mean 'topics'?)",
        "subscribers.yaml: line 13: entry has no email; write it as `- email: alice@example.org`",
        "subscribers.yaml: line 14: expected an entry like `- email: alice@example.org`",
    ]
    assert [s.email for s in result.subscribers] == ["alice@example.org", "gina@example.org"]


def test_unknown_topic_without_a_close_match_points_at_the_config(in_tmp) -> None:
    path = write(in_tmp, "- email: a@example.org\n  topics: [Quantum Chemistry]\n")
    assert load_subscribers(path, TOPICS).problems == [
        "subscribers.yaml: line 2: a@example.org: unknown topic 'Quantum Chemistry' "
        "(see config.yaml)"
    ]


def test_empty_topic_list_is_a_problem_not_every_topic(in_tmp) -> None:
    result = load_subscribers(write(in_tmp, "- email: a@example.org\n  topics: []\n"), TOPICS)
    assert result.subscribers == []
    assert result.problems == [
        "subscribers.yaml: line 1: a@example.org: topics is empty; list topic names or write `all`"
    ]


def test_a_subscribers_key_holding_the_list_is_accepted(tmp_path) -> None:
    path = write(tmp_path, "subscribers:\n  - email: a@example.org\n")
    assert [s.email for s in load_subscribers(path, TOPICS).subscribers] == ["a@example.org"]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "subscribers:\n"])
def test_an_empty_file_is_an_empty_list(tmp_path, text) -> None:
    assert load_subscribers(write(tmp_path, text), TOPICS) == ([], [])


def test_a_missing_file_is_an_empty_list_and_is_logged(in_tmp, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert load_subscribers(in_tmp / "subscribers.yaml", TOPICS) == ([], [])
    assert "subscribers.yaml: no such file; no hand-written subscribers" in caplog.text


def test_invalid_yaml_stops_the_load_naming_the_line(in_tmp) -> None:
    path = write(in_tmp, "- email: a@example.org\n- email: [b@example.org\n")
    with pytest.raises(SubscribersError, match=r"^subscribers\.yaml: line 3: not valid YAML"):
        load_subscribers(path, TOPICS)


def test_a_mapping_of_settings_is_the_wrong_shape(in_tmp) -> None:
    with pytest.raises(SubscribersError, match="expected a list of entries"):
        load_subscribers(write(in_tmp, "alice: alice@example.org\n"), TOPICS)


def test_import_csv_adds_confirmed_subscribers_and_reports_bad_rows(in_tmp, store) -> None:
    path = write(
        in_tmp,
        """\
        email,name,topics,format
        alice@example.org,Alice,,
        not-an-address,Broken,,
        bob@example.com,"Bob, Jr.",Robotics;vision,text

        carol@example.org,,LLM Reasoning|Robotcs,
        dave@example.com,,all,html
        """,
        name="people.csv",
    )
    result = import_subscribers(path, store, TOPICS)
    assert result.problems == [
        "people.csv: line 3: 'not-an-address' is not a valid address: "
        "An email address must have an @-sign.",
        "people.csv: line 6: carol@example.org: unknown topic 'Robotcs' (did you mean 'Robotics'?)",
    ]
    assert (result.added, result.existing) == (3, 0)
    assert store.confirmed_subscribers() == [
        Subscriber("alice@example.org", "Alice", None, "html", "cli"),
        Subscriber("bob@example.com", "Bob, Jr.", frozenset({"Robotics", "Vision"}), "text", "cli"),
        Subscriber("dave@example.com", None, None, "html", "cli"),
    ]
    again = import_subscribers(path, store, TOPICS)
    assert (again.added, again.existing) == (0, 3)


def test_import_csv_with_a_wrong_header_stops(in_tmp, store) -> None:
    path = write(in_tmp, "email,fromat\na@example.org,text\n", name="people.csv")
    with pytest.raises(SubscribersError) as info:
        import_subscribers(path, store, TOPICS)
    assert str(info.value) == (
        "people.csv: line 1: unknown column 'fromat' (did you mean 'format'?); "
        "the header is email,name,topics,format"
    )


def test_import_yaml_with_a_bad_row(in_tmp, store) -> None:
    path = write(
        in_tmp,
        "- email: a@example.org\n- email: b@@example.org\n- email: c@example.org\n",
        name="more.yaml",
    )
    result = import_subscribers(path, store, TOPICS)
    assert len(result.problems) == 1
    assert result.problems[0].startswith("more.yaml: line 2: 'b@@example.org' is not a valid")
    assert [s.email for s in store.confirmed_subscribers()] == ["a@example.org", "c@example.org"]
    assert all(s.source == "cli" for s in store.confirmed_subscribers())


def test_audience_joins_file_and_state_and_suppression_wins(store) -> None:
    file_list = [
        Subscriber("alice@example.org", "Alice"),
        Subscriber("bob@example.com", "Bob", frozenset({"Vision"})),
        Subscriber("frank@example.org"),
    ]
    store.add_subscriber(
        Subscriber("bob@example.com", "Robert", frozenset({"Robotics"}), "text", "web"),
        status="confirmed",
    )
    store.add_subscriber(Subscriber("carol@example.org", source="web"), status="confirmed")
    store.add_subscriber(Subscriber("dave@example.com", source="web"))  # never confirmed
    store.add_subscriber(Subscriber("erin@example.org", source="web"), status="confirmed")
    store.suppress("ALICE@example.org", "unsubscribed")  # any case: the address is the same
    store.suppress("erin@example.org", "bounced", "550 no such user")

    # the file's entries first, then the state's (which wins for an address in both)
    assert list(audience(file_list, store)) == [
        Subscriber("frank@example.org"),
        Subscriber("bob@example.com", "Robert", frozenset({"Robotics"}), "text", "web"),
        Subscriber("carol@example.org", source="web"),
    ]


_LOCAL = st.one_of(
    st.text(alphabet=st.sampled_from(list("abcXYZ019.!#$%&'*+/=?^_`{|}~-\" @<>\\üß\n"))),
    st.text(alphabet=st.sampled_from(list("aZ9.+_-")), min_size=50, max_size=70),
)
_LONG_DOMAIN = "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + ".org"  # 195 characters
_DOMAIN = st.sampled_from(
    [
        "example.org",
        "EXAMPLE.org",
        "example.com.",
        "münchen.de",
        "xn--mnchen-3ya.de",
        "localhost",
        "example.invalid",
        "a..b.org",
        "-x.org",
        "sub.example.co.uk",
        _LONG_DOMAIN,
        "",
    ]
)


@settings(max_examples=400, deadline=None)
@given(local=_LOCAL, domain=_DOMAIN)
@example(local="a" * 59, domain=_LONG_DOMAIN)  # 255 characters: one too many
@example(local="a" * 65, domain="example.org")
def test_the_domain_cache_never_changes_a_verdict(local, domain) -> None:
    """The cached short way and email-validator in full agree on every address."""

    def verdict(normalize, address):
        try:
            return normalize(address)
        except ValueError as e:
            return f"invalid: {e}"

    cache = AddressCache()
    verdict(cache.normalize, f"warm{len(local)}@{domain}")  # the domain is now known
    address = f"{local}@{domain}"
    assert verdict(cache.normalize, address) == verdict(normalize_email, address)


@pytest.mark.parametrize(
    ("escaped", "problem"),
    [
        ("Eve\\nBcc: all@example.org", "name contains a line break; write it on one line"),
        ("Eve\\rX", "name contains a line break; write it on one line"),
        ("Eve\\u2028X", "name contains a line break; write it on one line"),
        ("Eve\\x85X", "name contains a line break; write it on one line"),
        ("Eve\\x07", "name contains a control character; remove it"),
        ("E" * 201, "name is longer than 200 characters; shorten it"),
    ],
)
def test_names_that_could_break_a_header_are_rejected(in_tmp, escaped, problem) -> None:
    path = write(in_tmp, f'- email: eve@example.org\n  name: "{escaped}"\n')
    result = load_subscribers(path, TOPICS)
    assert result.subscribers == []
    assert result.problems == [f"subscribers.yaml: line 1: eve@example.org: {problem}"]


def test_a_tab_in_a_name_is_fine(tmp_path) -> None:
    result = load_subscribers(write(tmp_path, '- email: t@example.org\n  name: "A\\tB"\n'), TOPICS)
    assert [s.name for s in result.subscribers] == ["A\tB"]


def test_the_configured_list_resolves_against_the_config_folder(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    write(site, "- email: a@example.org\n  topics: [Vision]\n", name="people.yaml")
    config = parse_config(
        "subscribers: people.yaml\ntopics:\n  - name: Vision\n    keywords: [image]\n",
        base_dir=site,
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder
    result = load_subscribers(config.subscribers_path, config.topic_names)
    assert result == ([Subscriber("a@example.org", topics=frozenset({"Vision"}))], [])
