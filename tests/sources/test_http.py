from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest

from newsletter.errors import FetchError, SourceError
from newsletter.sources.http import USER_AGENT, fetch

URL = "https://example.org/api/daily_papers"


class Recorder:
    """A MockTransport that answers from a list of responses and records each request."""

    def __init__(self, answers: list[httpx.Response | Exception]) -> None:
        self.answers: Iterator[httpx.Response | Exception] = iter(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = next(self.answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))

    def fetch(self, **kwargs: object) -> httpx.Response:
        with self.client() as client:
            return fetch(URL, client, sleep=self.sleeps.append, **kwargs)  # type: ignore[arg-type]


def test_a_429_then_200_is_retried_after_a_backoff() -> None:
    rec = Recorder([httpx.Response(429), httpx.Response(200, text="ok")])
    response = rec.fetch(backoff=0.5)
    assert response.text == "ok"
    assert len(rec.requests) == 2
    assert rec.sleeps == [0.5]


def test_503_every_time_ends_in_a_fetch_error_naming_url_and_status() -> None:
    rec = Recorder([httpx.Response(503) for _ in range(4)])
    with pytest.raises(FetchError) as info:
        rec.fetch(retries=3, backoff=1.0)
    message = str(info.value)
    assert message.startswith(f"{URL}: HTTP 503 Service Unavailable after 4 attempt(s)")
    assert "\n" not in message
    assert len(rec.requests) == 4
    assert rec.sleeps == [1.0, 2.0, 4.0]  # exponential backoff, none after the last attempt
    assert isinstance(info.value, SourceError)
    assert info.value.status == 503  # type: ignore[attr-defined]


def test_retry_after_seconds_is_honoured() -> None:
    rec = Recorder([httpx.Response(503, headers={"Retry-After": "7"}), httpx.Response(200)])
    rec.fetch(backoff=1.0)
    assert rec.sleeps == [7.0]


def test_retry_after_as_an_http_date_is_honoured() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=20)
    header = format_datetime(when, usegmt=True)
    rec = Recorder([httpx.Response(429, headers={"Retry-After": header}), httpx.Response(200)])
    rec.fetch()
    assert len(rec.sleeps) == 1
    assert 17 <= rec.sleeps[0] <= 20


def test_a_retry_after_beyond_the_cap_fails_at_once() -> None:
    rec = Recorder([httpx.Response(429, headers={"Retry-After": "3600"})])
    with pytest.raises(FetchError, match=r"HTTP 429 .*retry after 3600 s"):
        rec.fetch(max_retry_after=60)
    assert rec.sleeps == []


def test_a_404_is_not_retried_and_shows_the_reason() -> None:
    rec = Recorder([httpx.Response(404, json={"error": "Not found"})])
    with pytest.raises(FetchError) as info:
        rec.fetch()
    assert str(info.value) == f'{URL}: HTTP 404 Not Found: {{"error":"Not found"}}; check the URL'
    assert len(rec.requests) == 1


def test_connection_errors_are_retried_then_named() -> None:
    failures: list[httpx.Response | Exception] = [
        httpx.ConnectError("connection refused") for _ in range(3)
    ]
    rec = Recorder(failures)
    with pytest.raises(FetchError, match=r"ConnectError: connection refused after 3 attempt"):
        rec.fetch(retries=2)
    assert len(rec.requests) == 3


def test_a_timeout_is_retried_and_the_timeout_is_passed_on() -> None:
    rec = Recorder([httpx.ReadTimeout("slow"), httpx.Response(200, text="late")])
    assert rec.fetch(timeout=5.0).text == "late"
    assert rec.requests[1].extensions["timeout"]["read"] == 5.0


def test_params_are_sent_and_shown_in_errors() -> None:
    rec = Recorder([httpx.Response(400)])
    with pytest.raises(FetchError, match=r"daily_papers\?week=2026-W24&p=0: HTTP 400"):
        rec.fetch(params={"week": "2026-W24", "p": 0})
    assert dict(rec.requests[0].url.params) == {"week": "2026-W24", "p": "0"}


def test_requests_say_who_is_asking() -> None:
    rec = Recorder([httpx.Response(200)])
    rec.fetch()
    assert rec.requests[0].headers["user-agent"] == USER_AGENT


def test_redirects_are_followed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(301, headers={"Location": "https://example.org/new"})
        return httpx.Response(200, text=request.url.path)

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        assert fetch("https://example.org/old", client).text == "/new"


def test_a_url_that_cannot_work_is_not_retried() -> None:
    with pytest.raises(
        FetchError, match=r"^ftp://example\.org/x: UnsupportedProtocol.*check the URL"
    ):
        fetch("ftp://example.org/x", sleep=pytest.fail)


def test_fetch_without_a_client_uses_its_own(sample_server: str) -> None:
    response = fetch(f"{sample_server}/arxiv-api-empty.xml")
    assert b"<opensearch:totalResults>0</opensearch:totalResults>" in response.content


def test_an_unreachable_server_is_a_fetch_error(unused_port: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{unused_port()}/papers.json"
    with pytest.raises(FetchError, match=rf"^{url}: ConnectError"):
        fetch(url, retries=1, sleep=lambda s: None, timeout=2)


@pytest.fixture
def unused_port() -> Callable[[], int]:
    import socket

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    return pick
