"""`newsletter check`: everything that can be verified before a send, reported together."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience import load_subscribers
from newsletter.audience.tokens import SecretKeys
from newsletter.config import FileSource
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.smtp import check_smtp
from newsletter.errors import NewsletterError
from newsletter.render import check_templates

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)


def run_checks(config: Config, *, smtp: bool = False, subscribers: Path | None = None) -> list[str]:
    """Return every problem in the sources, templates, subscribers, secrets (and SMTP if asked).

    `subscribers` replaces the config's subscribers file, as `--subscribers` does for `run`.
    """
    problems: list[str] = []
    for i, spec in enumerate(config.source_specs):
        if isinstance(spec, FileSource) and not Path(spec.path).is_file():
            problems.append(f"sources[{i}].file: {spec.path}: no such file")
    if config.templates_dir is not None and not config.resolve(config.templates_dir).is_dir():
        problems.append(f"templates_dir: {config.resolve(config.templates_dir)}: no such folder")
    else:
        problems.extend(check_templates(config.render_settings()))
    problems.extend(_subscribers(config, subscribers))
    problems.extend(_secrets(config))
    if smtp:
        problems.extend(check_smtp(config.delivery.smtp))
    return problems


def _subscribers(config: Config, given: Path | None) -> list[str]:
    if given is not None and not given.is_file():
        return [f"{given}: no such subscribers file; check --subscribers"]
    path = given or config.subscribers_path
    if not path.is_file():
        # not a problem: an audience may come only from the web form and imports
        log.warning("subscribers: %s does not exist; only web and imported subscribers", path)
    return load_subscribers(path, config.topic_names).problems


def _secrets(config: Config) -> list[str]:
    problems = []
    try:
        SecretKeys.from_env()
    except NewsletterError as e:
        problems.append(f"environment: {e}")
    if config.delivery.transport == "smtp" and config.delivery.smtp.username:
        variable = config.delivery.smtp.password_env
        if not os.environ.get(variable):
            problems.append(
                f"environment: {variable} is not set: set it to the password of SMTP user "
                f"'{config.delivery.smtp.username}' (delivery.smtp.password_env)"
            )
    try:
        DkimSigner.from_settings(config.mail_settings().dkim)
    except NewsletterError as e:
        problems.append(str(e))
    return problems
