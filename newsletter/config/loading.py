"""Find and read `config.yaml`, validate it once, and report every problem together.

Lookup order: `--config FILE`, then `$NEWSLETTER_CONFIG`, then `./config.yaml`, then the bundled
default. Relative paths in a config resolve against the folder of the file they were written in
(the current folder for the bundled default, so that state and output never land inside the
installed package).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from newsletter import resources
from newsletter.config.problems import line_numbers, loc_path, message, nearest_line
from newsletter.config.schema import Config, parse_source
from newsletter.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Source:
    label: str  # how errors name the file
    text: str
    base_dir: Path
    path: Path | None


def _locate(path: str | Path | None) -> _Source:
    if path is not None:
        p = Path(path).expanduser()
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError([f"{p}: no such file; pass an existing --config FILE"]) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError([f"{p}: cannot read ({e})"]) from e
        return _Source(str(p), text, p.resolve().parent, p.resolve())
    env = os.environ.get("NEWSLETTER_CONFIG")
    if env:
        return _locate(env)
    local = Path("config.yaml")
    if local.is_file():
        return _locate(local)
    return _Source(
        "config.yaml (bundled default)", resources.default_config_text(), Path.cwd(), None
    )


def parse_config(text: str, label: str = "config.yaml", base_dir: Path | None = None) -> Config:
    """Validate config text; raise `ConfigError` listing every problem as `label: key: problem`."""
    base_dir = base_dir or Path.cwd()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError([f"{label}{where}: not valid YAML: {problem}"]) from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{label}: expected a mapping of settings (like `topics: [...]`)"])
    if "topics" not in data:
        data["topics"] = yaml.safe_load(resources.default_config_text())["topics"]
    lines = line_numbers(text)
    problems: list[tuple[str, str]] = []
    try:
        config = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as e:
        config = None
        for err in e.errors():
            problems.append((loc_path(err["loc"]).lstrip("."), message(err, Config)))
    raw_sources = data.get("sources", [])
    if isinstance(raw_sources, list):
        for i, item in enumerate(raw_sources):
            for sub, problem in parse_source(item, base_dir)[1]:
                problems.append((f"sources[{i}]{sub}", problem))
    if problems:
        located = [(nearest_line(lines, key), key, problem) for key, problem in problems]
        # in file order, so the list reads like the file
        located.sort(key=lambda item: item[0] or 0)
        raise ConfigError(
            [
                f"{label}: {key or '(top level)'}: {problem}" + (f" (line {line})" if line else "")
                for line, key, problem in located
            ]
        )
    assert config is not None
    return config


def load_config(path: str | Path | None = None) -> Config:
    """Find, read and validate the config (`--config`, `./config.yaml`, bundled default)."""
    src = _locate(path)
    config = parse_config(src.text, src.label, src.base_dir)
    log.debug("config loaded from %s", src.label)
    return config.model_copy(update={"path": src.path})
