from __future__ import annotations

import logging

import pytest

from newsletter.audience.tokens import SecretKeys, make_token, read_token
from newsletter.errors import NewsletterError, TokenError

KEY = "k-9f3a1c77e2b54d0e8b61-current"
OLD_KEY = "k-0d1e2f3a4b5c6d7e8f90-retired"
DAY = 24 * 3600


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_round_trip_returns_the_address() -> None:
    token = make_token("unsubscribe", "alice@example.org", [KEY])
    assert read_token("unsubscribe", token, [KEY]) == "alice@example.org"
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


@pytest.mark.parametrize(
    ("made_for", "read_as"),
    [("confirm", "unsubscribe"), ("unsubscribe", "confirm"), ("preferences", "unsubscribe")],
)
def test_a_token_never_verifies_for_another_purpose(made_for, read_as) -> None:
    token = make_token(made_for, "alice@example.org", [KEY])
    with pytest.raises(TokenError) as info:
        read_token(read_as, token, [KEY])
    assert info.value.kind == "bad"
    assert f"this {read_as} link is not valid" in str(info.value)


def test_rotation_newest_key_signs_and_old_keys_still_verify() -> None:
    old_token = make_token("unsubscribe", "bob@example.org", [OLD_KEY])
    rotated = SecretKeys.from_env({"NEWSLETTER_SECRET_KEY": f"{KEY}, {OLD_KEY}"})
    assert read_token("unsubscribe", old_token, rotated) == "bob@example.org"
    new_token = make_token("unsubscribe", "bob@example.org", rotated)
    assert read_token("unsubscribe", new_token, [KEY]) == "bob@example.org"
    with pytest.raises(TokenError):  # signed with the newest key, not the old one
        read_token("unsubscribe", new_token, [OLD_KEY])


def test_one_string_is_read_as_comma_separated_keys() -> None:
    token = make_token("preferences", "bob@example.org", [OLD_KEY])
    assert read_token("preferences", token, f"{KEY},{OLD_KEY}") == "bob@example.org"


def test_a_changed_token_is_bad() -> None:
    token = make_token("unsubscribe", "alice@example.org", [KEY])
    payload, rest = token.split(".", 1)
    forged = make_token("unsubscribe", "mallory@example.org", [OLD_KEY]).split(".", 1)[0]
    for changed in (forged + "." + rest, token[:-2], payload + "." + rest[::-1]):
        with pytest.raises(TokenError) as info:
            read_token("unsubscribe", changed, [KEY])
        assert info.value.kind == "bad"


def test_confirm_tokens_expire_after_48_hours_by_default() -> None:
    clock = Clock()
    token = make_token("confirm", "carol@example.org", [KEY], clock=clock)
    clock.now += 47 * 3600
    assert read_token("confirm", token, [KEY], clock=clock) == "carol@example.org"
    clock.now += 2 * 3600
    with pytest.raises(TokenError) as info:
        read_token("confirm", token, [KEY], clock=clock)
    assert info.value.kind == "expired"
    assert str(info.value) == "this confirm link has expired; ask for a new one"


def test_an_explicit_max_age_applies() -> None:
    clock = Clock()
    token = make_token("preferences", "carol@example.org", [KEY], clock=clock)
    clock.now += 120
    with pytest.raises(TokenError) as info:
        read_token("preferences", token, [KEY], max_age=60, clock=clock)
    assert info.value.kind == "expired"


def test_unsubscribe_tokens_never_expire() -> None:
    clock = Clock()
    token = make_token("unsubscribe", "dave@example.com", [KEY], clock=clock)
    clock.now += 10 * 365 * DAY
    assert read_token("unsubscribe", token, [KEY], max_age=60, clock=clock) == "dave@example.com"


@pytest.mark.parametrize("value", [None, "", " , "])
def test_missing_secret_says_how_to_make_one(value) -> None:
    env = {} if value is None else {"NEWSLETTER_SECRET_KEY": value}
    with pytest.raises(NewsletterError) as info:
        SecretKeys.from_env(env)
    message = str(info.value)
    assert message.startswith("NEWSLETTER_SECRET_KEY is not set: set it to a long random string")
    assert "secrets.token_urlsafe(32)" in message


def test_secrets_never_show_in_reprs_errors_or_logs(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    short = "tiny-secret"
    keys = SecretKeys.from_env({"NEWSLETTER_SECRET_KEY": f"{KEY},{short}"})
    assert "shorter than 32 characters" in caplog.text
    texts = [repr(keys), str(keys), caplog.text]
    token = make_token("confirm", "erin@example.org", keys, clock=Clock())
    for bad in (token[:-3], make_token("unsubscribe", "erin@example.org", [OLD_KEY])):
        with pytest.raises(TokenError) as info:
            read_token("confirm", bad, keys)
        error: BaseException | None = info.value
        while error is not None:  # the chained library errors too
            texts += [str(error), repr(error)]
            error = error.__cause__
    with pytest.raises(TokenError) as info:
        read_token("confirm", token, keys, clock=Clock(1_800_000_000.0))
    texts += [str(info.value), repr(info.value), repr(info.value.__cause__)]
    assert len(texts) > 8
    for text in texts:
        assert KEY not in text and short not in text


def test_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown token purpose 'unsub'"):
        make_token("unsub", "a@example.org", [KEY])  # type: ignore[arg-type]


def test_token_maker_signs_an_id_as_itsdangerous_does() -> None:
    from newsletter.audience.tokens import TokenMaker, _serializer
    from newsletter.store.schema import new_id

    keys = SecretKeys([KEY, OLD_KEY])
    clock = Clock()
    maker = TokenMaker(keys, clock=clock)
    for purpose in ("unsubscribe", "preferences", "confirm"):
        for value in [new_id() for _ in range(50)] + ["a", "-_x", "A" * 16]:
            token = maker.make(purpose, value)
            if value != "A" * 16:  # itsdangerous compresses this one; both forms verify
                assert token == _serializer(purpose, keys, clock).dumps(value)
            assert read_token(purpose, token, [KEY], clock=clock) == value
            assert maker.read(purpose, token) == value
        clock.now += 1.5  # the timestamp moves on: a new one is signed
    # what is not a plain id goes through itsdangerous itself
    assert maker.read("unsubscribe", maker.make("unsubscribe", "bob@example.org")) == (
        "bob@example.org"
    )
