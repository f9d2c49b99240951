"""`newsletter check`: everything that can be verified before a send, reported together.

The checks a run makes before it writes anything (`newsletter.preflight`), plus what only a
check looks at: the configured sources, each subscriber entry, the reference MJML validator
and, when asked, a login on the SMTP server.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.audience import load_subscribers
from newsletter.config import FileSource
from newsletter.delivery.smtp import check_smtp
from newsletter.preflight import check_setup, setup_warnings

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)

__all__ = ["run_checks", "setup_warnings"]


def run_checks(config: Config, *, smtp: bool = False, subscribers: Path | None = None) -> list[str]:
    """Return every problem in the sources, templates, subscribers, secrets (and SMTP if asked).

    `subscribers` replaces the config's subscribers file, as `--subscribers` does for `run`.
    """
    problems: list[str] = []
    for i, spec in enumerate(config.source_specs):
        if isinstance(spec, FileSource) and not Path(spec.path).is_file():
            problems.append(f"sources[{i}].file: {spec.path}: no such file")
    problems.extend(check_setup(config, validate=True).problems)
    problems.extend(_subscribers(config, subscribers))
    if smtp:
        problems.extend(check_smtp(config.delivery.smtp))
    return problems


def _subscribers(config: Config, given: Path | None) -> list[str]:
    # a `--subscribers FILE` that does not exist was refused by the option already
    path = given or config.subscribers_path
    if not path.is_file():
        # not a problem: an audience may come only from the web form and imports
        log.warning("subscribers: %s does not exist; only web and imported subscribers", path)
    return load_subscribers(path, config.topic_names).problems
