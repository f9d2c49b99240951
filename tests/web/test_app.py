"""The app as a whole: tokens (forged, cross-purpose, expired, rotated keys), security headers on
every response, cross-site posts, GETs that change nothing, and `serve`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from newsletter.audience.tokens import SecretKeys, make_token
from newsletter.errors import NewsletterError
from newsletter.models import Subscriber
from newsletter.web import app as web
from tests.support.web import (
    ADDRESS,
    T0,
    Site,
    TestClient,
    link_in,
    make_site,
    sample_issue,
    sign_up,
    token,
)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, "max_per_topic: 2\n")


# -- tokens -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/confirm", "/unsubscribe", "/preferences"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_forged_and_cross_purpose_tokens_are_refused(site: Site, path: str, method: str) -> None:
    site.store.add_subscriber(Subscriber(ADDRESS, source="web"), status="pending")
    purpose = path.strip("/")
    good = token(site, purpose)
    other_purposes = [p for p in ("confirm", "unsubscribe", "preferences") if p != purpose]
    bad = [
        "",
        "garbage",
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        token(site, purpose, keys=SecretKeys(["some-other-secret-key-entirely!!"])),
        *(token(site, p) for p in other_purposes),
    ]
    before = site.snapshot()
    for value in bad:
        answer = site.client.request(method, f"{path}?token={value}")
        assert answer.status_code == 400, value
        assert "This link is not valid" in answer.text
        assert site.snapshot() == before
    assert site.client.request(method, f"{path}?token={good}").status_code == 200


def test_unsubscribe_links_keep_working_in_old_emails(site: Site) -> None:
    old = token(site, "unsubscribe")
    site.clock.advance(days=5 * 365)
    assert site.client.post(f"/unsubscribe?token={old}").status_code == 200
    assert site.suppression(ADDRESS) is not None


def test_rotated_keys_still_verify_links_signed_with_the_old_key(tmp_path: Path) -> None:
    old_key = SecretKeys(["the-old-key-that-signed-past-emails"])
    site = make_site(tmp_path, keys=SecretKeys(["a-brand-new-key-0123456789", *old_key._keys]))
    old_link = f"/unsubscribe?token={token(site, 'unsubscribe', keys=old_key)}"
    assert site.client.get(old_link).status_code == 200
    sign_up(site)
    assert site.client.get(link_in(site.mails()[0], "confirm")).status_code == 200

    only_new = make_site(tmp_path / "b", keys=SecretKeys(["a-brand-new-key-0123456789"]))
    assert only_new.client.get(old_link).status_code == 400


# -- security -----------------------------------------------------------------------------------


def _every_kind_of_response(site: Site) -> list[object]:
    site.store.archive.save_issue(sample_issue(site.config))
    c = site.client
    unsub = f"/unsubscribe?token={token(site, 'unsubscribe')}"
    prefs = f"/preferences?token={token(site, 'preferences')}"
    sign_up(site)
    confirm = link_in(site.mails()[0], "confirm")
    return [
        c.get("/"),
        c.get("/issues"),
        c.get("/issues/2026-W48"),
        c.get("/issues/nope"),
        c.get("/feed.xml"),
        c.get("/static/style.css"),
        c.get("/missing"),
        c.put("/subscribe"),
        sign_up(site, "b@example.org"),
        sign_up(site, "broken"),
        c.get(confirm),
        c.post(confirm),
        c.get("/confirm?token=bad"),
        c.get(unsub),
        c.post(unsub),
        c.get(prefs),
        c.post(prefs, data={"topics": ["Agents"]}),
        c.post("/subscribe", data={"email": "x@example.org"}, headers={"origin": "http://x.test"}),
    ]


def test_security_headers_on_every_page(site: Site) -> None:
    for answer in _every_kind_of_response(site):
        h = answer.headers  # type: ignore[attr-defined]
        where = f"{answer.request.method} {answer.request.url}"  # type: ignore[attr-defined]
        csp = h["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp, where
        assert "frame-ancestors 'none'" in csp, where
        assert h["x-content-type-options"] == "nosniff", where
        assert h["referrer-policy"] == "same-origin", where
        assert h["x-frame-options"] == "DENY", where
        assert "<script" not in answer.text.lower(), where  # type: ignore[attr-defined]


def test_a_server_error_is_a_plain_page_with_the_headers(site: Site) -> None:
    def broken() -> list[object]:
        raise RuntimeError("disk on fire")

    site.store.archive.list_issues = broken  # type: ignore[method-assign]
    client = TestClient(site.app, raise_server_exceptions=False)
    answer = client.get("/")
    assert answer.status_code == 500
    assert "disk on fire" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]


@pytest.mark.parametrize(
    "headers",
    [{"sec-fetch-site": "cross-site"}, {"origin": "https://evil.test"}, {"origin": "null"}],
)
def test_posts_from_another_site_are_refused(site: Site, headers: dict[str, str]) -> None:
    site.store.add_subscriber(Subscriber(ADDRESS, source="web"), status="pending")
    posts = [
        ("/subscribe", {"email": "x@example.org"}),
        (f"/confirm?token={token(site, 'confirm')}", {}),
        (f"/preferences?token={token(site, 'preferences')}", {"action": "unsubscribe"}),
    ]
    before = site.snapshot()
    for path, data in posts:
        assert site.client.post(path, data=data, headers=headers).status_code == 403, path
    assert site.snapshot() == before
    same = {"origin": "http://testserver", "sec-fetch-site": "same-origin"}
    assert site.client.post("/subscribe", data={"email": "x@example.org"}, headers=same).is_success


def test_no_get_changes_anything(site: Site) -> None:
    site.store.archive.save_issue(sample_issue(site.config))
    sign_up(site)
    confirm = link_in(site.mails()[0], "confirm")
    site.clock.advance(hours=49)  # also the expired-link page
    paths = [
        "/",
        "/subscribe",
        "/issues",
        "/issues/2026-W48",
        "/feed.xml",
        confirm,
        f"/unsubscribe?token={token(site, 'unsubscribe')}",
        f"/preferences?token={token(site, 'preferences')}",
        "/confirm/resend",
    ]
    before = site.snapshot()
    for path in paths:
        site.client.get(path)
        site.client.head(path)
        assert site.snapshot() == before, path


# -- serve --------------------------------------------------------------------------------------


def test_serve_refuses_to_start_without_a_secret(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SECRET_KEY", raising=False)
    with pytest.raises(NewsletterError, match="NEWSLETTER_SECRET_KEY is not set.*--dev"):
        web.serve(site.config, port=8123, dev=False)


def test_dev_mode_makes_a_throwaway_key_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    keys = web.server_keys(dev=True, environ={})
    assert len(keys) == 1
    assert "dev mode" in capsys.readouterr().err
    from_env = web.server_keys(dev=False, environ={"NEWSLETTER_SECRET_KEY": "k" * 32})
    assert make_token("confirm", ADDRESS, from_env) != make_token("confirm", ADDRESS, keys)


def test_the_store_clock_is_the_app_clock(site: Site) -> None:
    sign_up(site)
    stored = site.store.get_subscriber(ADDRESS)
    assert stored is not None and stored.confirm_sent_at == T0


def test_an_oversized_post_is_refused_with_a_page(site: Site) -> None:
    big = {"email": ADDRESS, "name": "x" * 100_000}
    answer = site.client.post("/subscribe", data=big)
    assert answer.status_code == 413 and "Too large" in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    chunks = (b"email=a%40example.org&name=" + b"x" * 1000 for _ in range(100))
    streamed = site.client.post(
        "/subscribe",
        content=chunks,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413
    assert site.mails() == []
    one_click = site.client.post(f"/unsubscribe?token={token(site, 'unsubscribe')}", data=big)
    assert one_click.status_code == 200 and site.suppression(ADDRESS) is not None
