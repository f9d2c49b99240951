"""Signed tokens for the links in emails: unsubscribe, preferences, confirm.

Each purpose signs with its own salt, so a token made for one purpose never verifies for another
(a confirm link cannot be replayed as an unsubscribe link). The secret comes from the
`NEWSLETTER_SECRET_KEY` environment variable: several comma-separated keys, newest first, let a key
be rotated without breaking links already sent (the newest signs, all of them verify).

What a token signs is opaque: a recipient id for unsubscribe and preference links, a sign-up
request id for confirm links (see `newsletter.store.recipients`, `newsletter.store.signups`).
Links made before signed the address itself; `is_address` tells those apart, so they still work.
A token is signed, not encrypted: whatever it carries can be read by anyone who sees the link.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import int_to_bytes
from itsdangerous.signer import HMACAlgorithm

from newsletter.errors import SecretKeyError, TokenError

log = logging.getLogger(__name__)

ENV_VAR = "NEWSLETTER_SECRET_KEY"
Purpose = Literal["unsubscribe", "preferences", "confirm"]

# Seconds a token stays valid when the caller gives no `max_age`. Unsubscribe and preference
# links sit in old emails and must keep working; a confirm link only matters for a few days.
MAX_AGE: dict[str, int | None] = {
    "unsubscribe": None,
    "preferences": None,
    "confirm": 48 * 3600,  # the default of `web.confirm_max_age_hours`
}
MIN_KEY_CHARS = 32  # a shorter key is warned about (and `check --production` refuses it)

_MISSING = (
    f"{ENV_VAR} is not set: set it to a long random string "
    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
)


class SecretKeys:
    """The signing keys, newest first; their values never show in a repr or a message."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[str]) -> None:
        cleaned = [k.strip() for k in keys if k and k.strip()]
        if not cleaned:
            raise SecretKeyError(_MISSING)
        self._keys = tuple(cleaned)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SecretKeys:
        """Read the comma-separated keys of `NEWSLETTER_SECRET_KEY` (newest first)."""
        value = (os.environ if environ is None else environ).get(ENV_VAR, "")
        keys = cls(value.split(","))
        if any(len(k) < MIN_KEY_CHARS for k in keys._keys):
            # the length only: the value itself must never reach a log
            log.warning(
                "%s holds a key shorter than %d characters; use a longer one",
                ENV_VAR,
                MIN_KEY_CHARS,
            )
        return keys

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"SecretKeys(<{len(self._keys)} hidden>)"

    __str__ = __repr__

    def _oldest_first(self) -> list[str]:
        # itsdangerous signs with the *last* key of its list and verifies with all of them
        return list(reversed(self._keys))


class _ClockSigner(TimestampSigner):
    """A timestamp signer whose clock can be replaced (tests check expiry without sleeping)."""

    def __init__(self, *args: Any, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clock = clock

    def get_timestamp(self) -> int:
        return int(self._clock())


def _serializer(
    purpose: str, keys: SecretKeys | Sequence[str], clock: Callable[[], float] | None
) -> URLSafeTimedSerializer:
    if purpose not in MAX_AGE:
        raise ValueError(f"unknown token purpose {purpose!r}; use one of {', '.join(MAX_AGE)}")
    if isinstance(keys, str):  # one string is the env var's format, not a list of characters
        keys = keys.split(",")
    secret = keys if isinstance(keys, SecretKeys) else SecretKeys(keys)
    return URLSafeTimedSerializer(
        secret._oldest_first(),
        salt=f"newsletter.{purpose}",
        signer=_ClockSigner,
        signer_kwargs={"clock": clock or time.time},
    )


def is_address(value: str) -> bool:
    """True for what a link made before recipient ids signed: the address itself."""
    return "@" in value


# What a recipient or sign-up id is made of (`secrets.token_urlsafe`): its JSON is itself quoted.
_PLAIN_VALUE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class _Signing:
    """`URLSafeTimedSerializer.dumps` for a plain id, with the work that stays the same done once.

    itsdangerous builds a signer, derives the key from the secret and the salt, and builds two
    HMAC objects for every token: 22 us, twice per message. Here the key is derived once (by the
    signer itself) into an HMAC state that each token copies, and the timestamp is encoded once a
    second: 4 us. The result is the same text `dumps` makes (tests compare the two).
    """

    def __init__(self, serializer: URLSafeTimedSerializer, clock: Callable[[], float]) -> None:
        signer = serializer.make_signer()
        assert isinstance(signer, TimestampSigner) and isinstance(signer.algorithm, HMACAlgorithm)
        # the newest key, as `dumps` signs with, in an HMAC state copied for each token (by name,
        # so that it is OpenSSL's: itsdangerous' digest is a Python wrapper around hashlib.sha1)
        name = signer.algorithm.digest_method().name
        self._mac = hmac.new(signer.derive_key(), digestmod=name)
        self._sep = signer.sep.encode() if isinstance(signer.sep, str) else signer.sep
        self._clock = clock
        self._second = -1
        self._stamp = b""

    def dumps(self, value: str) -> str:
        # compact JSON of a plain id is the id in quotes; a short random id never compresses,
        # so itsdangerous sends it as it is (were it to compress, both forms still verify)
        payload = base64.urlsafe_b64encode(b'"%s"' % value.encode()).rstrip(b"=")
        second = int(self._clock())
        if second != self._second:
            self._stamp = base64.urlsafe_b64encode(int_to_bytes(second)).rstrip(b"=")
            self._second = second
        signed = payload + self._sep + self._stamp
        mac = self._mac.copy()
        mac.update(signed)
        return (signed + self._sep + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")).decode()


class TokenMaker:
    """Make and read tokens with serializers built once: a send makes two for every message."""

    def __init__(
        self, keys: SecretKeys | Sequence[str], *, clock: Callable[[], float] | None = None
    ) -> None:
        self._serializers = {purpose: _serializer(purpose, keys, clock) for purpose in MAX_AGE}
        self._signing = {
            purpose: _Signing(serializer, clock or time.time)
            for purpose, serializer in self._serializers.items()
        }

    def make(self, purpose: Purpose, value: str) -> str:
        """Sign `value` (an opaque id) for one purpose with the newest key; URL-safe."""
        if _PLAIN_VALUE.fullmatch(value):
            return self._signing[purpose].dumps(value)
        return str(self._serializers[purpose].dumps(value))

    def read(self, purpose: Purpose, token: str, max_age: int | None = None) -> str:
        """Return what a token signs, or raise `TokenError` (bad or expired).

        `max_age` (seconds) defaults to the purpose's `MAX_AGE`; unsubscribe tokens never
        expire, whatever is passed, because an unsubscribe link must work in any email ever sent.
        """
        if purpose not in self._serializers:
            raise ValueError(f"unknown token purpose {purpose!r}; use one of {', '.join(MAX_AGE)}")
        return _loads(self._serializers[purpose], purpose, token, max_age)


def make_token(
    purpose: Purpose,
    value: str,
    keys: SecretKeys | Sequence[str],
    *,
    clock: Callable[[], float] | None = None,
) -> str:
    """Sign `value` for one purpose with the newest key; the result is URL-safe."""
    return str(_serializer(purpose, keys, clock).dumps(value))


def read_token(
    purpose: Purpose,
    token: str,
    keys: SecretKeys | Sequence[str],
    max_age: int | None = None,
    *,
    clock: Callable[[], float] | None = None,
) -> str:
    """Return what a token signs, or raise `TokenError` (bad or expired); see `TokenMaker.read`."""
    return _loads(_serializer(purpose, keys, clock), purpose, token, max_age)


def _loads(
    serializer: URLSafeTimedSerializer, purpose: str, token: str, max_age: int | None
) -> str:
    limit = max_age if max_age is not None else MAX_AGE.get(purpose)
    if purpose == "unsubscribe":
        limit = None
    try:
        value = serializer.loads(token, max_age=limit)
    except SignatureExpired as e:
        raise TokenError(
            f"this {purpose} link has expired; ask for a new one", kind="expired"
        ) from e
    except BadData as e:
        # BadData's own text can quote the token, never a key; keep ours short anyway
        raise TokenError(
            f"this {purpose} link is not valid (it was changed, cut short, or made for "
            "something else)",
            kind="bad",
        ) from e
    if not isinstance(value, str) or not value:
        raise TokenError(f"this {purpose} link is not valid (it names no one)", kind="bad")
    return value
