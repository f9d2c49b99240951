"""`newsletter check`: everything that can be verified before a send, reported together."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.config import FileSource

if TYPE_CHECKING:
    from newsletter.config import Config


def run_checks(config: Config) -> list[str]:
    """Return every problem found in the sources and templates (the config is already valid)."""
    problems: list[str] = []
    for i, spec in enumerate(config.source_specs):
        if isinstance(spec, FileSource) and not Path(spec.path).is_file():
            problems.append(f"sources[{i}].file: {spec.path}: no such file")
    if config.templates_dir is not None and not config.resolve(config.templates_dir).is_dir():
        problems.append(f"templates_dir: {config.resolve(config.templates_dir)}: no such folder")
    else:
        from newsletter.render import check_templates

        problems.extend(check_templates(config))
    return problems
