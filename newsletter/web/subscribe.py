"""The subscription pages: sign up, confirm, unsubscribe (with RFC 8058 one-click), preferences.

A GET never changes anything: mail scanners and link previews open every link in a message, so
each link from an email (confirm, unsubscribe) shows a page whose button posts the change.
Answers never tell whether an address is known: a sign-up reads the same for a new, a pending
and a subscribed address, and the confirmation email goes out after the answer, so even the
response time says nothing. See `newsletter.web.security` for why there is no CSRF token.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from newsletter.audience.tokens import Purpose
from newsletter.errors import TokenError
from newsletter.web.archive import home_page
from newsletter.web.forms import check_signup, read_preferences, read_signup
from newsletter.web.pages import NOINDEX, message, page, state
from newsletter.web.security import client_key, cross_site

log = logging.getLogger(__name__)

FORM_LIMITS: dict[str, Any] = {"max_files": 0, "max_fields": 100, "max_part_size": 16 * 1024}
SENT = (
    "Check your inbox",
    "If this address can receive our email, a message with a confirmation link is on its way.",
    "Your subscription starts when you press the button on the page that link opens. "
    "Nothing arrived? Look in the spam folder; a new link can be sent once a day.",
)


def _forbidden(request: Request) -> Response:
    log.warning("refused a cross-site post to %s from %s", request.url.path, client_key(request))
    return message(
        request,
        "Not allowed",
        "This form can only be sent from this site's own pages.",
        status=403,
    )


def _too_many(request: Request) -> Response:
    log.warning("rate limit: %s on %s", client_key(request), request.url.path)
    return message(
        request,
        "Too many requests",
        "Too many sign-ups came from your network in the last hour; please try again later.",
        status=429,
        headers={"Retry-After": "3600"},
    )


def _token_error(request: Request, purpose: Purpose, error: TokenError, token: str) -> Response:
    """The friendly 400 page of a tampered or expired link (an expired confirm offers a new one)."""
    return page(
        request,
        "token_error.html",
        {"purpose": purpose, "kind": error.kind, "token": token},
        status=400,
        headers=NOINDEX,
    )


async def _email_of(request: Request, purpose: Purpose) -> tuple[str | None, Response | None]:
    """Return the address the URL's token was made for, or the error page to answer with."""
    token = request.query_params.get("token", "")
    try:
        return state(request).subs.read(purpose, token), None
    except TokenError as e:
        log.info("%s link refused (%s) from %s", purpose, e.kind, client_key(request))
        return None, _token_error(request, purpose, e, token)


async def _form(request: Request) -> FormData:
    return await request.form(**FORM_LIMITS)


# -- sign-up ----------------------------------------------------------------------------------


async def subscribe(request: Request) -> Response:
    """POST /subscribe: record a pending sign-up and send its confirmation email."""
    st = state(request)
    if cross_site(request, st.config.base_url):
        return _forbidden(request)
    if not st.limiter.allow(client_key(request)):
        return _too_many(request)
    form = read_signup(await _form(request))
    if form.is_bot:
        # the same answer as a real sign-up, so a bot learns nothing from it
        log.info("sign-up with the honeypot filled from %s; ignored", client_key(request))
        return message(request, *SENT)
    checked = check_signup(form, st.topic_names, st.config.web.blocked_domains)
    if checked.subscriber is None:
        return home_page(request, form, checked.errors, status=400)
    email = checked.subscriber.email
    send = await run_in_threadpool(st.subs.sign_up, checked.subscriber)
    return message(request, *SENT, background=st.confirmation_task(email) if send else None)


async def resend(request: Request) -> Response:
    """POST /confirm/resend: a new confirmation link for an expired one (same limits)."""
    st = state(request)
    if cross_site(request, st.config.base_url):
        return _forbidden(request)
    if not st.limiter.allow(client_key(request)):
        return _too_many(request)
    token = (await _form(request)).get("token")
    token = token if isinstance(token, str) else ""
    try:
        email = st.subs.read_expired_confirm(token)
    except TokenError as e:
        return _token_error(request, "confirm", e, "")
    send = await run_in_threadpool(st.subs.resend, email)
    return message(request, *SENT, background=st.confirmation_task(email) if send else None)


# -- confirm ----------------------------------------------------------------------------------


async def confirm_page(request: Request) -> Response:
    """GET /confirm?token=: a page with the button that confirms (it changes nothing itself)."""
    email, error = await _email_of(request, "confirm")
    if error is not None:
        return error
    token = request.query_params["token"]
    return page(request, "confirm.html", {"token": token}, headers=NOINDEX)


async def confirm(request: Request) -> Response:
    """POST /confirm?token=: confirm the subscription."""
    st = state(request)
    if cross_site(request, st.config.base_url):
        return _forbidden(request)
    email, error = await _email_of(request, "confirm")
    if error is not None:
        return error
    assert email is not None
    outcome = await run_in_threadpool(st.subs.confirm, email)
    if outcome == "unknown":
        return message(
            request,
            "Nothing to confirm",
            "There is no sign-up waiting for this link. Sign up again on the home page.",
            status=400,
            headers=NOINDEX,
        )
    prefs = st.subs.token("preferences", email)
    return page(request, "confirmed.html", {"preferences_token": prefs}, headers=NOINDEX)


# -- unsubscribe ------------------------------------------------------------------------------


async def unsubscribe_page(request: Request) -> Response:
    """GET /unsubscribe?token=: a page with the unsubscribe button."""
    email, error = await _email_of(request, "unsubscribe")
    if error is not None:
        return error
    token = request.query_params["token"]
    return page(request, "unsubscribe.html", {"token": token, "email": email}, headers=NOINDEX)


async def unsubscribe(request: Request) -> Response:
    """POST /unsubscribe?token=: unsubscribe; also the RFC 8058 one-click target.

    No cookie, login or CSRF token; any body (a `List-Unsubscribe=One-Click` form in either
    encoding, or none) is accepted; the answer is a 200 page, never a redirect; a repeat
    changes nothing.
    """
    st = state(request)
    email, error = await _email_of(request, "unsubscribe")
    if error is not None:
        return error
    assert email is not None
    try:
        one_click = (await _form(request)).get("List-Unsubscribe") == "One-Click"
    except Exception:  # a body we cannot parse must not keep anyone subscribed
        log.info("unsubscribe of %s: unreadable body ignored", email)
        one_click = False
    how = "one-click (RFC 8058)" if one_click else "unsubscribe page"
    await run_in_threadpool(st.subs.unsubscribe, email, how)
    prefs = st.subs.token("preferences", email)
    return page(request, "unsubscribed.html", {"preferences_token": prefs}, headers=NOINDEX)


# -- preferences ------------------------------------------------------------------------------


def _preferences_page(
    request: Request, email: str, current: Any, *, saved: bool = False, errors: Any = None
) -> Response:
    st = state(request)
    sub = current.subscriber
    return page(
        request,
        "preferences.html",
        {
            "token": request.query_params["token"],
            "email": email,
            "topics": st.config.topics,
            "chosen": set(sub.topics) if sub.topics is not None else set(),
            "format": sub.format,
            "suppressed": current.suppressed,
            "saved": saved,
            "errors": errors or {},
        },
        status=400 if errors else 200,
        headers=NOINDEX,
    )


async def preferences_page(request: Request) -> Response:
    """GET /preferences?token=: the topics and format form."""
    st = state(request)
    email, error = await _email_of(request, "preferences")
    if error is not None:
        return error
    assert email is not None
    current = await run_in_threadpool(st.subs.current, email)
    return _preferences_page(request, email, current)


async def preferences(request: Request) -> Response:
    """POST /preferences?token=: save topics and format, unsubscribe, or subscribe again."""
    st = state(request)
    if cross_site(request, st.config.base_url):
        return _forbidden(request)
    email, error = await _email_of(request, "preferences")
    if error is not None:
        return error
    assert email is not None
    form = read_preferences(await _form(request), st.topic_names)
    if form.errors:
        current = await run_in_threadpool(st.subs.current, email)
        return _preferences_page(request, email, current, errors=form.errors)
    if form.action == "unsubscribe":
        await run_in_threadpool(st.subs.unsubscribe, email, "preferences page")
        prefs = st.subs.token("preferences", email)
        return page(request, "unsubscribed.html", {"preferences_token": prefs}, headers=NOINDEX)
    if form.action == "resubscribe":
        await run_in_threadpool(st.subs.resubscribe, email)
    else:
        await run_in_threadpool(st.subs.save_preferences, email, form.topics, form.format)
    current = await run_in_threadpool(st.subs.current, email)
    return _preferences_page(request, email, current, saved=True)
