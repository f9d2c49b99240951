"""Load and validate `config.yaml` once, reporting every problem together.

The sections are in `newsletter.config_sections` (re-exported here, `X as X`); this module holds
the whole `Config`, the lookup, and the one-line-per-problem error report.

Lookup order: `--config FILE`, then `./config.yaml`, then the bundled default. Relative paths in a
config resolve against the folder of the file they were written in (the current folder for the
bundled default, so that state and output never land inside the installed package).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
)

from newsletter import resources
from newsletter.config_sections import (
    SOURCE_KINDS,
    ArxivSource,
    BrandConfig,
    DeliveryConfig,
    DkimConfig,
    FileSource,
    GroupingConfig,
    HfDailySource,
    ScheduleConfig,
    SenderConfig,
    SmtpConfig,
    SourceSpec,
    StrList,
    TopicConfig,
    UrlSource,
    WebConfig,
    _check_timezone,
    _Strict,
)
from newsletter.errors import ConfigError
from newsletter.models import Topic

__all__ = [
    "Config",
    "load_config",
    "parse_config",
    "SOURCE_KINDS",
    "ArxivSource",
    "BrandConfig",
    "DeliveryConfig",
    "DkimConfig",
    "FileSource",
    "GroupingConfig",
    "HfDailySource",
    "ScheduleConfig",
    "SenderConfig",
    "SmtpConfig",
    "SourceSpec",
    "StrList",
    "TopicConfig",
    "UrlSource",
    "WebConfig",
]

log = logging.getLogger(__name__)


class Config(_Strict):
    """The whole validated configuration. Every key has a default but `topics`."""

    title: str = "Papers of the week"
    description: str = "The week's research papers, grouped by topic."
    lang: str = "en"
    timezone: str = "UTC"
    window_days: int = Field(7, ge=1, le=366)
    base_url: str = "http://localhost:8000"
    organisation: str = "newsletter · a self-hosted paper digest"
    postal_address: str | None = None  # the footer's postal line (anti-spam laws ask for one)
    brand: BrandConfig = BrandConfig()
    sources: list[Any] = Field(default_factory=lambda: [{"hf_daily": {}}])
    grouping: GroupingConfig = GroupingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    topics: list[TopicConfig]
    # rendering
    templates_dir: Path | None = None
    # papers a topic shows in the email; the rest are one click away on the web page
    max_per_topic: int | None = Field(4, ge=1)  # null: every paper
    max_papers: int | None = Field(None, ge=1)
    top_papers: int = Field(3, ge=0, le=10)  # the "Top of the week" block; 0 leaves it out
    size_budget_kb: int = Field(100, ge=10)
    summary_chars: int = Field(300, ge=150, le=2000)  # a summary's length before the size budget
    subject: str = "{title}: {papers}, {topics}"  # keys: title, papers, count, topics, issue_id
    # delivery state and audience; both resolve against the config file's folder
    # the hand-written list (see subscribers.example.yaml); a missing file means no one is on it
    subscribers: str = "subscribers.yaml"
    # the state store: a SQLite file path, or a database URL (sqlite:///..., postgresql://...)
    state: str = "newsletter.db"
    # delivery (see newsletter/mail.py and newsletter/delivery.py)
    sender: SenderConfig = SenderConfig()
    list_id: str | None = None  # default: "<title slug>.<sender domain>"
    unsubscribe_mailto: str | None = None  # also offer mailto: in List-Unsubscribe
    send_empty: bool = False  # send to a subscriber whose topics have no papers this week
    delivery: DeliveryConfig = DeliveryConfig()
    dkim: DkimConfig | None = None
    web: WebConfig = WebConfig()  # see newsletter/web.py
    # where the file came from (set by `load_config`, not by users)
    path: Path | None = Field(None, exclude=True)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str) -> str:
        import string

        allowed = {"title", "papers", "count", "topics", "issue_id"}
        try:
            keys = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as e:
            raise ValueError(f"not a valid template ({e}); write keys as {{title}}") from e
        unknown = sorted(k for k in keys if k not in allowed)
        if unknown:
            raise ValueError(f"unknown key {{{unknown[0]}}}; use {', '.join(sorted(allowed))}")
        return value

    @field_validator("list_id", "unsubscribe_mailto")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("must be one line without control characters (it goes in a header)")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("topics")
    @classmethod
    def _unique_topics(cls, value: list[TopicConfig]) -> list[TopicConfig]:
        seen: set[str] = set()
        for topic in value:
            key = topic.name.casefold()
            if key in seen:
                raise ValueError(f"topic name '{topic.name}' appears twice")
            if key == "other":
                raise ValueError("'Other' is the section for unmatched papers; rename the topic")
            seen.add(key)
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_list(cls, value: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("expected a list of sources (like `- hf_daily: {}`)")
        return value

    @property
    def topic_rules(self) -> tuple[Topic, ...]:
        return tuple(t.to_topic() for t in self.topics)

    @property
    def source_specs(self) -> list[SourceSpec]:
        """The validated sources (checked at load time, so this cannot fail)."""
        return [_parse_source(item, self.base_dir)[0] for item in self.sources]  # type: ignore[misc]

    def resolve(self, path: str | Path) -> Path:
        """Resolve a path written in this config against the config's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _parse_source(item: Any, base_dir: Path) -> tuple[SourceSpec | None, list[tuple[str, str]]]:
    """Turn one `sources:` entry into a spec; return (spec, [(subpath, problem)])."""
    if isinstance(item, str):
        if item in ("hf_daily", "arxiv"):
            item = {item: {}}
        elif re.match(r"^https?://", item):
            item = {"url": item}
        else:
            item = {"file": item}
    if not isinstance(item, dict) or len(item) != 1:
        return None, [
            ("", "expected one source like `hf_daily: {}`, `arxiv: {...}` or `file: PATH`")
        ]
    kind, options = next(iter(item.items()))
    model = SOURCE_KINDS.get(kind)
    if model is None:
        hint = _did_you_mean(str(kind), SOURCE_KINDS)
        return None, [
            (f".{kind}", f"unknown source kind{hint}; use one of {', '.join(SOURCE_KINDS)}")
        ]
    if options is None:
        options = {}
    if kind == "file" and isinstance(options, str):
        options = {"path": options}
    if kind == "url" and isinstance(options, str):
        options = {"url": options}
    if not isinstance(options, dict):
        return None, [(f".{kind}", "expected a mapping of options")]
    try:
        spec = model.model_validate(options)
    except ValidationError as e:
        return None, [(f".{kind}{_loc(err['loc'])}", _message(err, model)) for err in e.errors()]
    if isinstance(spec, FileSource):
        p = Path(spec.path).expanduser()
        spec = spec.model_copy(update={"path": str(p if p.is_absolute() else base_dir / p)})
    return spec, []


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the last key of `loc` (for 'known keys' hints)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) else None
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        nested = [a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None
        current = nested[0]
    return current if isinstance(current, type) else None


_TYPE_WORDS = {
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "missing": "required key is missing",
}


def _message(err: dict[str, Any], model: type[BaseModel]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        holder = _model_at(model, err["loc"])
        known = [k for k, f in holder.model_fields.items() if not f.exclude] if holder else []
        hint = _did_you_mean(str(err["loc"][-1]), known)
        listing = f"; known keys: {', '.join(known)}" if known else ""
        return f"unknown key{hint}{listing}"
    if kind in _TYPE_WORDS:
        return _TYPE_WORDS[kind]
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _line_numbers(text: str) -> dict[str, int]:
    """Map every key path in a YAML document (`topics[2].keywords`) to its 1-based line."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = f"{path}.{key.value}" if path else str(key.value)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, f"{path}[{i}]")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, "")
    return lines


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
    lines = _line_numbers(text)
    problems: list[tuple[str, str]] = []
    try:
        config = Config.model_validate({**data, "base_dir": base_dir})
    except ValidationError as e:
        config = None
        for err in e.errors():
            problems.append((_loc(err["loc"]).lstrip("."), _message(err, Config)))
    raw_sources = data.get("sources", [])
    if isinstance(raw_sources, list):
        for i, item in enumerate(raw_sources):
            for sub, problem in _parse_source(item, base_dir)[1]:
                problems.append((f"sources[{i}]{sub}", problem))
    if problems:
        located = [(_nearest_line(lines, key), key, problem) for key, problem in problems]
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


def _nearest_line(lines: dict[str, int], key: str) -> int | None:
    while key:
        if key in lines:
            return lines[key]
        key = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", key)
    return None


def load_config(path: str | Path | None = None) -> Config:
    """Find, read and validate the config (`--config`, `./config.yaml`, bundled default)."""
    src = _locate(path)
    config = parse_config(src.text, src.label, src.base_dir)
    log.debug("config loaded from %s", src.label)
    return config.model_copy(update={"path": src.path})
