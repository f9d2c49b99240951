"""`newsletter check`: everything that can be verified before a send, reported together."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.config import FileSource

if TYPE_CHECKING:
    from newsletter.config import Config


def run_checks(config: Config, *, smtp: bool = False) -> list[str]:
    """Return every problem in the sources, templates, subscribers (and SMTP when asked)."""
    problems: list[str] = []
    for i, spec in enumerate(config.source_specs):
        if isinstance(spec, FileSource) and not Path(spec.path).is_file():
            problems.append(f"sources[{i}].file: {spec.path}: no such file")
    if config.templates_dir is not None and not config.resolve(config.templates_dir).is_dir():
        problems.append(f"templates_dir: {config.resolve(config.templates_dir)}: no such folder")
    else:
        from newsletter.render import check_templates

        problems.extend(check_templates(config))
    from newsletter.subscribers import load_subscribers_for

    problems.extend(load_subscribers_for(config).problems)
    if smtp:
        from newsletter.smtp import check_smtp

        problems.extend(check_smtp(config))
    return problems
