"""The subscription pages through Starlette's TestClient: sign-up, confirm, unsubscribe and
preferences, each rule of the flow.

The site runs on a temp folder with a real SQLite store and the outbox transport (a Maildir we
read back); a hand-moved clock drives token ages and limits, so nothing sleeps.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from newsletter.audience.subscribers import audience, load_subscribers
from newsletter.models import Subscriber
from tests.support.web import (
    ADDRESS,
    Site,
    TestClient,
    audience_emails,
    form_action,
    html_part,
    link_in,
    make_site,
    sign_up,
    text_part,
    token,
)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, "max_per_topic: 2\n")


# -- home and sign-up ---------------------------------------------------------------------------


def test_sign_up_records_pending_and_sends_one_confirmation_without_the_name(site: Site) -> None:
    answer = sign_up(site, "Ada@Example.org", name="Mallory: buy cheap pills at evil.test")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.text
    stored = site.store.get_subscriber(ADDRESS)
    assert stored is not None and stored.status == "pending"
    assert stored.subscriber.source == "web"
    assert stored.subscriber.topics is None  # no box ticked: all topics
    assert ADDRESS not in audience_emails(site)  # not before confirming

    [mail] = site.mails()
    assert mail["To"] == ADDRESS
    assert mail["From"] == "Papers Desk <digest@news.test>"
    assert mail["Subject"] == "Confirm your subscription to Papers & Co"
    assert mail.get_content_type() == "multipart/alternative"
    raw = mail.as_string()
    assert "Mallory" not in raw and "pills" not in raw
    assert link_in(mail, "confirm").startswith("/confirm?token=")
    assert "/confirm?token=" in html_part(mail)


def test_sign_up_keeps_the_chosen_topics(site: Site) -> None:
    sign_up(site, topics=["Agents", "Robotics"])
    stored = site.store.get_subscriber(ADDRESS)
    assert stored is not None
    assert stored.subscriber.topics == frozenset({"Agents", "Robotics"})
    sign_up(site, "bo@example.org", topics=["Diffusion", "Agents", "Robotics"])
    every = site.store.get_subscriber("bo@example.org")
    assert every is not None and every.subscriber.topics is None  # every box: all, also new ones


def test_the_answer_is_the_same_for_new_pending_and_subscribed_addresses(site: Site) -> None:
    site.store.add_subscriber(
        Subscriber("old@example.org", "Old", source="web"), status="confirmed"
    )
    site.store.add_subscriber(Subscriber("wait@example.org", source="web"), status="pending")
    answers = [sign_up(site, a) for a in ("new@example.org", "wait@example.org", "old@example.org")]
    assert {a.status_code for a in answers} == {200}
    assert answers[0].text == answers[1].text == answers[2].text
    assert answers[0].headers.keys() == answers[2].headers.keys()
    # the confirmed one is left as it was: the form proves nothing about who typed it
    old = site.store.get_subscriber("old@example.org")
    assert old is not None and old.status == "confirmed" and old.subscriber.name == "Old"
    assert sorted(m["To"] for m in site.mails()) == ["new@example.org", "wait@example.org"]


def test_five_sign_ups_of_one_address_in_a_minute_send_one_email(site: Site) -> None:
    for _ in range(5):
        assert sign_up(site).status_code == 200
        site.clock.advance(seconds=10)
    assert len(site.mails()) == 1
    site.clock.advance(hours=24)
    sign_up(site)
    assert len(site.mails()) == 2  # a day later, a new link may go out


def test_a_filled_honeypot_sends_nothing_and_answers_the_same(site: Site) -> None:
    human = sign_up(site, "human@example.org")
    before = site.snapshot()
    bot = sign_up(site, "bot@example.org", website="http://spam.example")
    assert bot.status_code == human.status_code == 200
    assert bot.text == human.text
    assert site.snapshot() == before
    assert site.store.get_subscriber("bot@example.org") is None


def test_the_honeypot_is_hidden_from_people(site: Site) -> None:
    text = site.client.get("/").text
    assert '<div class="hp" aria-hidden="true">' in text
    assert re.search(r'name="website" type="text" tabindex="-1" autocomplete="off"', text)
    css = site.client.get("/static/style.css").text
    assert re.search(r"\.hp \{ position: absolute; left: -10000px;", css)


def test_the_per_ip_limit_refuses_then_recovers(tmp_path: Path) -> None:
    site = make_site(tmp_path, "web:\n  rate_limit_per_ip: 3\n")
    for i in range(3):
        assert sign_up(site, f"p{i}@example.org").status_code == 200
    refused = sign_up(site, "p3@example.org")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3600"
    assert "Too many" in refused.text
    assert site.store.get_subscriber("p3@example.org") is None
    other = site.client_for("203.0.113.9").post("/subscribe", data={"email": "q@example.org"})
    assert other.status_code == 200
    site.clock.advance(minutes=61)
    assert sign_up(site, "p3@example.org").status_code == 200
    assert len(site.mails()) == 5


def test_a_blocked_domain_is_refused_with_a_form_error(tmp_path: Path) -> None:
    site = make_site(tmp_path, "web:\n  blocked_domains: [Spam.Example.net]\n")
    for address in ("x@spam.example.net", "x@mail.spam.example.net"):
        answer = sign_up(site, address)
        assert answer.status_code == 400
        assert "Sign-ups from this email domain are not accepted" in answer.text
        assert f'value="{address}"' in answer.text
    assert site.mails() == []
    assert sign_up(site, "x@notspam.example.net").status_code == 200
    assert len(site.mails()) == 1


def test_an_invalid_address_shows_a_form_error(site: Site) -> None:
    answer = sign_up(site, "not-an-address", name="Ada")
    assert answer.status_code == 400
    assert 'id="email-error"' in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert 'value="not-an-address"' in answer.text and 'value="Ada"' in answer.text
    assert site.mails() == []


@pytest.mark.parametrize(
    "fields",
    [
        {"email": ADDRESS, "name": "Ada\r\nBcc: victim@example.org"},
        {"email": ADDRESS, "name": "Ada\nX"},
        {"email": f"{ADDRESS}\r\nBcc: victim@example.org", "name": ""},
        {"email": f"{ADDRESS}\n", "name": "Ada\u2028Lovelace"},
    ],
)
def test_line_breaks_in_a_name_or_address_are_refused(site: Site, fields: dict[str, str]) -> None:
    before = site.snapshot()
    answer = site.client.post("/subscribe", data=fields)
    assert answer.status_code == 400
    assert "line breaks" in answer.text
    assert site.snapshot() == before


def test_what_a_visitor_typed_is_shown_escaped(site: Site) -> None:
    evil = '"><script>alert(1)</script>'
    answer = sign_up(site, evil, name=evil)
    assert answer.status_code == 400
    assert "<script>" not in answer.text
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in answer.text


# -- confirm ------------------------------------------------------------------------------------


def test_confirm_shows_a_button_and_only_the_post_confirms(site: Site) -> None:
    sign_up(site)
    link = link_in(site.mails()[0], "confirm")
    before = site.snapshot()
    page = site.client.get(link)
    assert page.status_code == 200
    assert site.snapshot() == before
    assert form_action(page.text) == [link]
    assert "<button" in page.text
    done = site.client.post(link)
    assert done.status_code == 200
    assert "You are subscribed" in done.text
    stored = site.store.get_subscriber(ADDRESS)
    assert stored is not None and stored.status == "confirmed"
    assert ADDRESS in audience_emails(site)


def test_an_expired_confirm_link_offers_a_new_one_under_the_same_limits(site: Site) -> None:
    sign_up(site)
    link = link_in(site.mails()[0], "confirm")
    site.clock.advance(hours=49)
    page = site.client.get(link)
    assert page.status_code == 400
    assert "This link has expired" in page.text
    assert form_action(page.text) == ["/confirm/resend"]
    assert site.client.post(link).status_code == 400
    pending = site.store.get_subscriber(ADDRESS)
    assert pending is not None and pending.status == "pending"

    hidden = re.search(r'name="token" value="([^"]+)"', page.text)
    assert hidden
    again = site.client.post("/confirm/resend", data={"token": hidden.group(1)})
    assert again.status_code == 200 and "Check your inbox" in again.text
    assert len(site.mails()) == 2
    site.client.post("/confirm/resend", data={"token": hidden.group(1)})
    assert len(site.mails()) == 2  # one per address per day, as for sign-ups
    fresh = link_in(site.mails()[1], "confirm")
    assert site.client.post(fresh).status_code == 200
    assert ADDRESS in audience_emails(site)


def test_confirm_lifetime_follows_the_config(tmp_path: Path) -> None:
    site = make_site(tmp_path, "web:\n  confirm_max_age_hours: 2\n")
    sign_up(site)
    assert "works for 2 hours" in text_part(site.mails()[0])
    link = link_in(site.mails()[0], "confirm")
    site.clock.advance(hours=1, minutes=59)
    assert site.client.get(link).status_code == 200
    site.clock.advance(minutes=2)
    assert "expired" in site.client.get(link).text


def test_a_new_confirmation_lifts_an_earlier_unsubscribe(site: Site) -> None:
    sign_up(site)
    site.client.post(link_in(site.mails()[0], "confirm"))
    site.client.post(f"/unsubscribe?token={token(site, 'unsubscribe')}")
    assert ADDRESS not in audience_emails(site)
    site.clock.advance(hours=25)
    sign_up(site)
    mails = site.mails()
    assert len(mails) == 2
    assert ADDRESS not in audience_emails(site)  # not before the new confirmation
    site.client.post(link_in(mails[1], "confirm"))
    assert ADDRESS in audience_emails(site)
    assert site.suppression(ADDRESS) is None


# -- unsubscribe --------------------------------------------------------------------------------


def test_unsubscribe_shows_a_button_and_the_post_unsubscribes(site: Site) -> None:
    site.store.add_subscriber(Subscriber(ADDRESS, source="web"), status="confirmed")
    link = f"/unsubscribe?token={token(site, 'unsubscribe')}"
    before = site.snapshot()
    page = site.client.get(link)
    assert page.status_code == 200 and site.snapshot() == before
    assert form_action(page.text) == [link]
    done = site.client.post(link)
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert site.suppression(ADDRESS) == ("unsubscribed", "unsubscribe page")
    assert ADDRESS not in audience_emails(site)


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe_in_both_encodings(site: Site, encoding: str) -> None:
    site.store.add_subscriber(Subscriber(ADDRESS, source="web"), status="confirmed")
    link = f"/unsubscribe?token={token(site, 'unsubscribe')}"
    body: dict[str, object]
    if encoding == "urlencoded":
        body = {"data": {"List-Unsubscribe": "One-Click"}}
    else:
        body = {"files": {"List-Unsubscribe": (None, "One-Click")}}
    # a mail provider's server: no cookie, no Origin, no CSRF token, no redirects followed
    client = TestClient(site.app, follow_redirects=False, client=("192.0.2.1", 1))
    answer = client.post(link, **body)  # type: ignore[arg-type]
    sent_type = answer.request.headers["content-type"]
    assert sent_type.startswith(
        "application/x-www-form-urlencoded" if encoding == "urlencoded" else "multipart/form-data"
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "set-cookie" not in answer.headers
    assert site.suppression(ADDRESS) == ("unsubscribed", "one-click (RFC 8058)")
    before = site.snapshot()
    again = client.post(link, **body)  # type: ignore[arg-type]
    assert again.status_code == 200 and site.snapshot() == before


def test_one_click_passes_even_from_another_site_and_with_an_odd_body(site: Site) -> None:
    link = f"/unsubscribe?token={token(site, 'unsubscribe')}"
    answer = site.client.post(
        link,
        content=b"--broken\r\nnot multipart at all",
        headers={
            "content-type": "multipart/form-data; boundary=zzz",
            "origin": "https://mail.example.com",
            "sec-fetch-site": "cross-site",
        },
    )
    assert answer.status_code == 200
    assert site.suppression(ADDRESS) is not None


def test_an_unsubscribe_wins_over_the_hand_written_file(site: Site) -> None:
    (site.folder / "subscribers.yaml").write_text(
        "- email: file@example.org\n  name: File Person\n", encoding="utf-8"
    )
    assert "file@example.org" in audience_emails(site)
    site.client.post(f"/unsubscribe?token={token(site, 'unsubscribe', 'file@example.org')}")
    assert "file@example.org" not in audience_emails(site)
    assert "File Person" in (site.folder / "subscribers.yaml").read_text()  # never rewritten


# -- preferences --------------------------------------------------------------------------------


def test_preferences_change_topics_and_format(site: Site) -> None:
    site.store.add_subscriber(
        Subscriber(ADDRESS, "Ada", frozenset({"Agents"}), source="web"), status="confirmed"
    )
    link = f"/preferences?token={token(site, 'preferences')}"
    before = site.snapshot()
    page = site.client.get(link)
    assert page.status_code == 200 and site.snapshot() == before
    assert '<input type="checkbox" name="topics" value="Agents" checked>' in page.text
    assert '<input type="checkbox" name="topics" value="Robotics">' in page.text
    assert '<input type="radio" name="format" value="html" checked>' in page.text

    saved = site.client.post(
        link, data={"action": "save", "topics": ["Robotics", "Diffusion"], "format": "text"}
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    [sub] = [s for s in audience([], site.store) if s.email == ADDRESS]
    assert sub.topics == frozenset({"Robotics", "Diffusion"})
    assert sub.format == "text" and sub.name == "Ada"
    assert '<input type="radio" name="format" value="text" checked>' in saved.text


def test_preferences_of_a_file_subscriber_override_the_file(site: Site) -> None:
    (site.folder / "subscribers.yaml").write_text(
        "- email: file@example.org\n  name: Fi\n  topics: [Diffusion]\n", encoding="utf-8"
    )
    link = f"/preferences?token={token(site, 'preferences', 'file@example.org')}"
    page = site.client.get(link)
    assert '<input type="checkbox" name="topics" value="Diffusion" checked>' in page.text
    site.client.post(link, data={"topics": ["Agents"], "format": "html"})
    listed = load_subscribers(site.config.subscribers_path, site.config.topic_names).subscribers
    [sub] = [s for s in audience(listed, site.store) if s.email == "file@example.org"]
    assert sub.topics == frozenset({"Agents"}) and sub.name == "Fi"


def test_preferences_can_unsubscribe_and_subscribe_again(site: Site) -> None:
    site.store.add_subscriber(Subscriber(ADDRESS, source="web"), status="confirmed")
    link = f"/preferences?token={token(site, 'preferences')}"
    gone = site.client.post(link, data={"action": "unsubscribe"})
    assert gone.status_code == 200 and "You are unsubscribed" in gone.text
    assert site.suppression(ADDRESS) == ("unsubscribed", "preferences page")
    page = site.client.get(link)
    assert "This address is unsubscribed" in page.text
    back = site.client.post(link, data={"action": "resubscribe"})
    assert back.status_code == 200
    assert site.suppression(ADDRESS) is None
    assert ADDRESS in audience_emails(site)


def test_preferences_refuse_an_unknown_topic(site: Site) -> None:
    link = f"/preferences?token={token(site, 'preferences')}"
    before = site.snapshot()
    answer = site.client.post(link, data={"topics": ["Astrology"], "format": "html"})
    assert answer.status_code == 400 and "Choose topics from the list." in answer.text
    assert site.snapshot() == before


def test_simultaneous_sign_ups_of_one_address_claim_one_email(site: Site) -> None:
    from concurrent.futures import ThreadPoolExecutor

    subs = site.app.state.web.subs
    with ThreadPoolExecutor(5) as pool:
        claims = list(pool.map(lambda _: subs.sign_up(Subscriber(ADDRESS, source="web")), range(5)))
    assert claims.count(True) == 1
