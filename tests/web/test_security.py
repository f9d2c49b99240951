from __future__ import annotations

import pytest
from starlette.requests import Request

from newsletter.web.security import RateLimiter, client_key, cross_site

BASE = "https://news.example.org"


def _request(headers: dict[str, str], client: str = "192.0.2.1") -> Request:
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/subscribe",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (client, 1234),
        "server": ("127.0.0.1", 8000),
    }
    return Request(scope)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_allows_the_limit_per_window_and_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, window=3600, clock=clock)
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")
    clock.now += 1800
    assert not limiter.allow("a")  # the window slides: the first three are still in it
    clock.now += 1801
    assert limiter.allow("a")


def test_the_limiter_forgets_idle_keys_when_full() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, window=60, clock=clock)
    limiter.MAX_KEYS = 10  # type: ignore[misc]
    for i in range(10):
        limiter.allow(f"k{i}")
    clock.now += 61
    limiter.allow("new")
    assert len(limiter) == 1


@pytest.mark.parametrize(
    "host, key",
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.9", "192.0.2.9"),
        ("testclient", "testclient"),
    ],
)
def test_clients_are_keyed_by_address_or_ipv6_64(host: str, key: str) -> None:
    assert client_key(_request({}, client=host)) == key


@pytest.mark.parametrize(
    "headers, refused",
    [
        ({}, False),  # curl, a mail provider: not a browser page of another site
        ({"sec-fetch-site": "same-origin"}, False),
        ({"sec-fetch-site": "none"}, False),
        ({"sec-fetch-site": "cross-site"}, True),
        ({"sec-fetch-site": "same-site"}, True),
        ({"origin": BASE}, False),
        ({"origin": "https://NEWS.example.org"}, False),
        ({"origin": "http://127.0.0.1:8000", "host": "127.0.0.1:8000"}, False),
        ({"origin": "https://evil.example"}, True),
        ({"origin": "null"}, True),
    ],
)
def test_cross_site_posts_are_told_apart(headers: dict[str, str], refused: bool) -> None:
    assert cross_site(_request(headers), BASE) is refused
