"""The whole configuration: one strict pydantic model, and the section each stage takes."""

from __future__ import annotations

import ipaddress
import re
import string
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from newsletter.config.problems import did_you_mean, loc_path, message
from newsletter.config.sections import (
    SOURCE_KINDS,
    BrandConfig,
    DeliveryConfig,
    DkimConfig,
    FileSource,
    GroupingConfig,
    ScheduleConfig,
    SenderConfig,
    SourceSpec,
    TopicConfig,
    WebConfig,
    _check_timezone,
    _Strict,
)
from newsletter.config.stages import (
    IssueSettings,
    MailSettings,
    RenderSettings,
    StateSettings,
    TransportSettings,
    resolve_path,
)
from newsletter.models import Topic


class Config(_Strict):
    """The whole validated configuration. Every key has a default but `topics`."""

    title: str = "Papers of the week"
    description: str = "The week's research papers, grouped by topic."
    lang: str = "en"
    timezone: str = "UTC"
    window_days: int = Field(7, ge=1, le=366)
    base_url: str = "http://localhost:8000"
    organisation: str = "newsletter · a self-hosted paper digest"
    # the sender's postal address for the footer (bulk mail must carry one); null: none yet
    postal_address: str | None = None
    brand: BrandConfig = BrandConfig()
    sources: list[Any] = Field(default_factory=lambda: [{"hf_daily": {}}])
    grouping: GroupingConfig = GroupingConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    topics: list[TopicConfig]
    # rendering
    templates_dir: Path | None = None
    # papers a topic shows in the email; the rest are one click away on the issue's web page
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
    # delivery (see newsletter/delivery/message.py and newsletter/delivery/send.py)
    sender: SenderConfig = SenderConfig()
    list_id: str | None = None  # default: "<title slug>.<sender domain>"
    unsubscribe_mailto: str | None = None  # also offer mailto: in List-Unsubscribe
    send_empty: bool = False  # send to a subscriber whose topics have no papers this week
    delivery: DeliveryConfig = DeliveryConfig()
    dkim: DkimConfig | None = None
    web: WebConfig = WebConfig()  # see newsletter/web/
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

        allowed = {"title", "papers", "count", "topics", "issue_id"}
        try:
            keys = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as e:
            raise ValueError(f"not a valid template ({e}); write keys as {{title}}") from e
        unknown = sorted(k for k in keys if k not in allowed)
        if unknown:
            raise ValueError(f"unknown key {{{unknown[0]}}}; use {', '.join(sorted(allowed))}")
        return value

    @field_validator("title", "subject", "list_id", "unsubscribe_mailto")
    @classmethod
    def _header_safe(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("must be one line without control characters (it goes in a header)")
        return value

    @field_validator("postal_address")
    @classmethod
    def _postal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("is empty; write your postal address, or null while you have none")
        if re.search(r"[\x00-\x09\x0b-\x1f\x7f]", value):
            raise ValueError("must be plain text without control characters")
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
        return [parse_source(item, self.base_dir)[0] for item in self.sources]  # type: ignore[misc]

    def resolve(self, path: str | Path) -> Path:
        """Resolve a path written in this config against the config's folder."""
        return resolve_path(self.base_dir, path)

    @property
    def base_url_is_loopback(self) -> bool:
        """True when `base_url` names this machine (links in emails would reach no one else)."""
        host = (urlsplit(self.base_url).hostname or "").lower().rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def topic_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.topics)

    def issue_settings(self) -> IssueSettings:
        """The section `topics.build_issue` takes."""
        return IssueSettings(
            title=self.title,
            timezone=self.timezone,
            window_days=self.window_days,
            base_url=self.base_url,
            topic_rules=self.topic_rules,
            grouping=self.grouping,
            max_per_topic=self.max_per_topic,
            max_papers=self.max_papers,
        )

    def render_settings(self) -> RenderSettings:
        """The section `render.render_issue` takes."""
        templates = None if self.templates_dir is None else self.resolve(self.templates_dir)
        return RenderSettings(
            title=self.title,
            description=self.description,
            lang=self.lang,
            timezone=self.timezone,
            window_days=self.window_days,
            base_url=self.base_url,
            organisation=self.organisation,
            postal_address=self.postal_address,
            brand=self.brand,
            subject=self.subject,
            templates_dir=templates,
            size_budget_kb=self.size_budget_kb,
            summary_chars=self.summary_chars,
            top_papers=self.top_papers,
            topic_names=self.topic_names,
        )

    def mail_settings(self) -> MailSettings:
        """The section delivery takes to build and send messages."""
        dkim = self.dkim
        if dkim is not None:
            dkim = dkim.model_copy(update={"key_path": str(self.resolve(dkim.key_path))})
        return MailSettings(
            title=self.title,
            base_url=self.base_url,
            sender=self.sender,
            list_id=self.list_id,
            unsubscribe_mailto=self.unsubscribe_mailto,
            send_empty=self.send_empty,
            max_consecutive_errors=self.delivery.max_consecutive_errors,
            retry_minutes=self.delivery.retry_minutes,
            max_attempts=self.delivery.max_attempts,
            lease_seconds=self.delivery.lease_seconds,
            dkim=dkim,
        )

    def state_settings(self) -> StateSettings:
        """The section the state store (`newsletter.store`) takes."""
        name = self.path.name if self.path else "config.yaml"
        return StateSettings(self.state, self.base_dir, name, "state" in self.model_fields_set)

    def transport_settings(self) -> TransportSettings:
        """The section `delivery.make_transport` takes."""
        return TransportSettings(self.delivery, self.resolve(self.delivery.outbox))

    @property
    def subscribers_path(self) -> Path:
        """The hand-written subscriber list, resolved."""
        return self.resolve(self.subscribers)


def parse_source(item: Any, base_dir: Path) -> tuple[SourceSpec | None, list[tuple[str, str]]]:
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
        hint = did_you_mean(str(kind), SOURCE_KINDS)
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
        return None, [(f".{kind}{loc_path(err['loc'])}", message(err, model)) for err in e.errors()]
    if isinstance(spec, FileSource):
        p = Path(spec.path).expanduser()
        spec = spec.model_copy(update={"path": str(p if p.is_absolute() else base_dir / p)})
    return spec, []
