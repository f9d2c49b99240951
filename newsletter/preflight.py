"""What a run checks before it writes anything; `newsletter check` runs the same checks.

A run that cannot send (no secret key, a broken template, a header that cannot be written, a
transport that cannot work, a papers file that is not there) must fail before it archives the
issue, fills the ledger or records papers as sent: otherwise the web archive and the feed show an
issue nobody got, and the next run resumes that issue instead of building it anew. So every such
check runs first, and all problems are reported together, one line each. Warnings (links mail
providers refuse, a footer without a postal address) are said but stop nothing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsletter.audience.tokens import SecretKeys
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import build_template
from newsletter.errors import NewsletterError, PreflightError
from newsletter.models import RenderedEmail
from newsletter.render.context import sample_issue, subject_line
from newsletter.render.renderer import check_templates
from newsletter.store.database import state_folder

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)


@dataclass
class Findings:
    """What the checks found: problems stop a run, warnings do not; the keys when readable."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keys: SecretKeys | None = None


def check_setup(
    config: Config,
    *,
    papers: Sequence[str] = (),
    subscribers: str | Path | None = None,
    validate: bool = False,
) -> Findings:
    """Check everything a run needs before it writes; `validate` adds the MJML validator."""
    found = Findings()
    found.problems += paper_files(papers)
    if subscribers is not None and not Path(subscribers).is_file():
        found.problems.append(f"{subscribers}: no such subscribers file; check --subscribers")
    try:
        found.keys = SecretKeys.from_env()
    except NewsletterError as e:
        found.problems.append(f"environment: {e}")
    try:
        state_folder(config.state_settings())
    except NewsletterError as e:
        found.problems.append(str(e))
    templates = check_templates(config.render_settings(), validate=validate)
    found.problems += templates
    if not templates:  # a header is checked on a rendered subject: only once templates render
        found.problems += _headers(config)
    found.problems += _transport(config)
    found.warnings += setup_warnings(config)
    return found


def preflight(
    config: Config, *, papers: Sequence[str] = (), subscribers: str | Path | None = None
) -> SecretKeys:
    """Check before a run writes anything; raise `PreflightError` listing every problem.

    Warnings go to the log when the run delivers over SMTP (to real people); the signing keys
    are returned for the run to use.
    """
    found = check_setup(config, papers=papers, subscribers=subscribers)
    if found.problems:
        raise PreflightError(found.problems)
    if config.delivery.transport == "smtp":
        for warning in found.warnings:
            log.warning("%s", warning)
    assert found.keys is not None
    return found.keys


def paper_files(sources: Sequence[str]) -> list[str]:
    """A problem for each local papers file (not a URL, not `sample`) that is not there."""
    problems = []
    for source in sources:
        if source == "sample" or re.match(r"^https?://", source, re.IGNORECASE):
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            problems.append(f"{source}: is a folder; give a file of papers")
        elif not path.is_file():
            problems.append(f"{source}: no such file; give a file path, an http(s) URL or `sample`")
    return problems


def _headers(config: Config) -> list[str]:
    """Build a message's headers once, as a send would: From, Subject, List-Id, List-Unsubscribe."""
    settings = config.render_settings()
    issue = sample_issue(settings)
    subject = subject_line(settings, issue, issue.sections, issue.paper_count)
    sample = RenderedEmail(subject, "<p>sample</p>", "sample", "", 0, 0)
    try:
        build_template(sample, config.mail_settings(), issue.id)
    except NewsletterError as e:
        return [str(e)]
    return []


def _transport(config: Config) -> list[str]:
    problems = []
    smtp = config.delivery.smtp
    if (
        config.delivery.transport == "smtp"
        and smtp.username
        and not os.environ.get(smtp.password_env)
    ):
        problems.append(
            f"environment: {smtp.password_env} is not set: set it to the password of SMTP user "
            f"'{smtp.username}' (delivery.smtp.password_env)"
        )
    if config.delivery.transport == "outbox":
        problems += _outbox(config.transport_settings().outbox)
    try:
        DkimSigner.from_settings(config.mail_settings().dkim)
    except NewsletterError as e:
        problems.append(str(e))
    return problems


def _outbox(path: Path) -> list[str]:
    """The outbox can be made: the folder is one, or its nearest existing parent is writable."""
    if path.exists():
        if not path.is_dir():
            return [f"delivery.outbox: {path} is a file, not a folder; set delivery.outbox"]
        return []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        return [
            f"delivery.outbox: {path} cannot be made ({parent} is not a writable folder); "
            "set delivery.outbox to a writable folder"
        ]
    return []


def setup_warnings(config: Config) -> list[str]:
    """What mail providers or the law want that the config does not give (nothing stops)."""
    warnings = []
    if config.delivery.transport == "smtp":
        parts = urlsplit(config.base_url)
        if parts.scheme != "https":
            warnings.append(
                f"base_url: {config.base_url} is not https: Gmail and Yahoo honour one-click "
                "unsubscribe (RFC 8058) only over https; set base_url to the public https "
                "address of `newsletter serve`"
            )
        if config.base_url_is_loopback:
            warnings.append(
                f"base_url: {config.base_url} is a loopback address: the unsubscribe, preference "
                "and web links in the emails reach only this machine; set base_url to the "
                "public address of `newsletter serve`"
            )
    if not config.postal_address:
        warnings.append(
            "postal_address: the footer shows no postal address; anti-spam laws such as "
            "CAN-SPAM ask for one in every bulk email: set postal_address to yours"
        )
    return warnings
