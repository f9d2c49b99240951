from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from newsletter.web.forms import (
    check_email,
    check_name,
    check_signup,
    check_topics,
    is_blocked,
    read_preferences,
    read_signup,
)

TOPICS = ["Diffusion", "Agents", "Robotics"]


def test_an_address_is_normalised() -> None:
    assert check_email("  Ada@Example.ORG ") == ("ada@example.org", None)


@pytest.mark.parametrize(
    "raw, words",
    [
        ("", "Enter your email address"),
        ("ada", "not a valid email address"),
        ("ada@", "not a valid email address"),
        ("ada@example.org\r\nBcc: b@example.org", "line breaks"),
        ("ada@exa\x00mple.org", "control characters"),
        ("a" * 250 + "@example.org", "at most 254"),
    ],
)
def test_a_bad_address_gets_a_message_for_the_form(raw: str, words: str) -> None:
    address, problem = check_email(raw)
    assert address is None
    assert problem is not None and words in problem


@pytest.mark.parametrize("raw", ["Ada\nLovelace", "Ada\rX", "Ada\u2028X", "Ada\x85X", "A\x1bB"])
def test_a_name_with_a_line_break_or_control_is_refused(raw: str) -> None:
    name, problem = check_name(raw)
    assert name is None and problem is not None and "one line" in problem


def test_a_name_is_trimmed_and_may_be_empty() -> None:
    assert check_name("  Ada   Lovelace ") == ("Ada Lovelace", None)
    assert check_name("   ") == (None, None)
    assert check_name("x" * 101)[1] == "A name has at most 100 characters."


def test_blocked_domains_cover_subdomains_only_on_a_dot() -> None:
    blocked = ["spam.example"]
    assert is_blocked("a@spam.example", blocked)
    assert is_blocked("a@eu.spam.example", blocked)
    assert not is_blocked("a@notspam.example", blocked)
    assert not is_blocked("a@spam.example.org", blocked)


def test_topics_none_or_every_box_mean_all() -> None:
    assert check_topics([], TOPICS) == (None, None)
    assert check_topics(["agents", "ROBOTICS", "Diffusion"], TOPICS) == (None, None)
    assert check_topics(["agents"], TOPICS) == (frozenset({"Agents"}), None)
    assert check_topics(["Astrology"], TOPICS) == (None, "Choose topics from the list.")


def test_a_sign_up_is_checked_field_by_field() -> None:
    form = read_signup(
        FormData([("email", "bad"), ("name", "A\nB"), ("topics", "Nope"), ("website", "")])
    )
    checked = check_signup(form, TOPICS)
    assert checked.subscriber is None
    assert set(checked.errors) == {"email", "name", "topics"}
    good = check_signup(read_signup(FormData([("email", "a@example.org")])), TOPICS)
    assert good.subscriber is not None
    assert (good.subscriber.source, good.subscriber.format) == ("web", "html")


def test_the_honeypot_marks_a_bot() -> None:
    assert read_signup(FormData([("website", "http://x")])).is_bot
    assert not read_signup(FormData([("website", " ")])).is_bot


def test_preferences_read_the_button_topics_and_format() -> None:
    form = read_preferences(
        FormData([("action", "save"), ("topics", "Agents"), ("format", "text")]), TOPICS
    )
    assert (form.action, form.topics, form.format, form.errors) == (
        "save",
        frozenset({"Agents"}),
        "text",
        {},
    )
    odd = read_preferences(FormData([("action", "drop-table"), ("format", "pdf")]), TOPICS)
    assert odd.action == "save" and odd.errors == {"format": "Choose HTML or plain text."}
