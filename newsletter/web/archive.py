"""The public pages: the home page with its sign-up form, the issue archive and the Atom feed.

They only read the store. The web version of an issue is rebuilt from the archived `Issue`, so it
lists every paper of every section, including those a cap left out of the email.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from newsletter.web.feed import MEDIA_TYPE, atom_feed
from newsletter.web.forms import HONEYPOT, SignupForm
from newsletter.web.issue_view import archive_entries, issue_page_view
from newsletter.web.pages import ARCHIVE_CACHE, message, page, state

log = logging.getLogger(__name__)


def home_page(
    request: Request,
    form: SignupForm | None = None,
    errors: Mapping[str, str] | None = None,
    *,
    status: int = 200,
    latest: list[Any] | None = None,
) -> Response:
    """Render the home page; a sign-up with problems shows it again with the values typed."""
    st = state(request)
    return page(
        request,
        "index.html",
        {
            "topics": st.config.topics,
            "form": form or SignupForm(),
            "errors": dict(errors or {}),
            "honeypot": HONEYPOT,
            "issues": archive_entries(latest or [], st.config.timezone),
        },
        status=status,
    )


async def home(request: Request) -> Response:
    """GET /: what the newsletter is, the sign-up form and the latest issues."""
    st = state(request)
    issues = await run_in_threadpool(st.store.archive.list_issues)
    return home_page(request, latest=issues[: st.config.web.latest_issues])


async def issues_index(request: Request) -> Response:
    """GET /issues: every archived issue, newest first."""
    st = state(request)
    issues = await run_in_threadpool(st.store.archive.list_issues)
    entries = archive_entries(issues, st.config.timezone)
    return page(
        request, "issues.html", {"issues": issues, "entries": entries}, headers=ARCHIVE_CACHE
    )


async def issue_page(request: Request) -> Response:
    """GET /issues/{id}: the web version of one issue, every paper included."""
    st = state(request)
    issue_id = request.path_params["issue_id"]
    archived = await run_in_threadpool(st.store.archive.get_issue, issue_id)
    if archived is None:
        return message(
            request,
            "Issue not found",
            "There is no issue with this id; the archive lists every issue.",
            status=404,
        )
    issue = archived.issue
    ids_in_email = {p.id for s in issue.sections for p in s.papers}
    # summarising every paper is CPU work: off the event loop, like the store call above
    view = await run_in_threadpool(issue_page_view, issue, st.config)
    return page(
        request,
        "issue.html",
        {"issue": issue, "in_email": ids_in_email, "archived": archived, "view": view},
        headers=ARCHIVE_CACHE,
    )


async def feed(request: Request) -> Response:
    """GET /feed.xml: the Atom feed of the latest issues."""
    st = state(request)

    def load() -> list[Any]:
        summaries = st.store.archive.list_issues()[: st.config.web.feed_entries]
        found = (st.store.archive.get_issue(s.id) for s in summaries)
        return [a for a in found if a is not None]

    archived = await run_in_threadpool(load)
    body = atom_feed(st.config, archived, st.env, now=st.subs.clock())
    return Response(body, media_type=MEDIA_TYPE, headers=ARCHIVE_CACHE)
