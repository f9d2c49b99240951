"""The sections of `config.yaml`: one strict pydantic model each (an unknown key is an error).

`newsletter.config.loading` puts them together into `Config` and reports every problem at once.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from newsletter.models import Topic


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"'{value}' is not an IANA timezone (like Europe/Berlin)") from e
    return value


def _str_list(value: Any) -> Any:
    """Accept only a list of non-empty strings (a bare string is a common YAML slip)."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("expected a list of strings")
    return tuple(v.strip() for v in value)


StrList = Annotated[tuple[str, ...], BeforeValidator(_str_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TopicConfig(_Strict):
    name: str = Field(min_length=1)
    keywords: StrList
    exclude: StrList = ()
    require: StrList = ()
    description: str = ""

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # topic names go into the subject line (`{topics}`): a line break would start a header
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("a topic name must be one line without control characters")
        return value

    def to_topic(self) -> Topic:
        return Topic(self.name, self.keywords, self.exclude, self.require, self.description)


class GroupingConfig(_Strict):
    """How keyword hits become a topic."""

    title_weight: float = Field(3.0, gt=0)
    abstract_weight: float = Field(1.0, ge=0)
    keyword_weight: float = Field(2.0, ge=0)  # the source's key phrases (HF `ai_keywords`)
    # learned keywords (see `newsletter.topics.learn`): their share of their weight; 0: off
    learned_weight: float = Field(0.0, ge=0)
    min_score: float = Field(1.0, gt=0)  # below this a paper goes to "Other"
    multi_topic: bool = False  # also list a paper under other topics that score high enough
    max_topics: int = Field(2, ge=1)
    # a secondary topic needs at least this share of the best topic's score
    secondary_ratio: float = Field(0.75, gt=0, le=1)


class HfDailySource(_Strict):
    url: str = "https://huggingface.co/api/daily_papers"
    date: str | None = None  # YYYY-MM-DD
    week: str | None = None  # YYYY-Www
    month: str | None = None  # YYYY-MM
    limit: int = Field(100, ge=1, le=100)


class ArxivSource(_Strict):
    categories: StrList = ()
    announce_types: StrList = ("new", "cross")
    query: str | None = None  # an arXiv API search query; without one, the listing feeds are read
    max_results: int = Field(200, ge=1, le=2000)
    feed_url: str = "https://rss.arxiv.org/rss/"
    api_url: str = "https://export.arxiv.org/api/query"

    @model_validator(mode="after")
    def _needs_something(self) -> ArxivSource:
        if not self.categories and not self.query:
            raise ValueError("give `categories` (listing feeds) or `query` (API search)")
        return self


class FileSource(_Strict):
    path: str
    kind: str | None = None  # force a parser; detected from content by default


class UrlSource(_Strict):
    url: str
    kind: str | None = None


SourceSpec = HfDailySource | ArxivSource | FileSource | UrlSource
SOURCE_KINDS: dict[str, type[SourceSpec]] = {
    "hf_daily": HfDailySource,
    "arxiv": ArxivSource,
    "file": FileSource,
    "url": UrlSource,
}


class ScheduleConfig(_Strict):
    """When the weekly job runs (`newsletter schedule`)."""

    # minute hour day-of-month month day-of-week; the default avoids the 01:00-03:59 DST hours
    cron: str = "0 8 * * mon"
    timezone: str | None = None  # IANA name; default: the top-level `timezone`
    misfire_grace_hours: float = Field(6.0, ge=0)  # a run missed by less than this still happens
    every_seconds: int | None = Field(None, ge=1)  # instead of `cron`: for trials and tests
    # a run that leaves rows pending runs again after this long, doubling each time (at most a
    # day apart), until everyone has the issue or the next fire comes
    retry_after_minutes: float = Field(30, gt=0)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        # APScheduler (120 ms to import) only for a config that sets its own cron
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except (ValueError, TypeError) as e:
            raise ValueError(
                f"'{value}' is not a cron expression (five fields: minute hour day month "
                "weekday, like '0 8 * * mon')"
            ) from e
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)


class SenderConfig(_Strict):
    """Who the issue comes from: the From header and the envelope sender (bounces go there)."""

    name: str | None = None  # default: the top-level `title`
    address: str = "digest@example.org"

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and re.search(r"[\x00-\x1f\x7f]", value):
            raise ValueError("a sender name must be one line without control characters")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if not re.fullmatch(
            r"[^@\s<>\x00-\x1f\x7f]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", value
        ):
            raise ValueError(f"'{value}' is not an email address (like digest@example.org)")
        return value

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1].lower()


class SmtpConfig(_Strict):
    """An SMTP relay. The password is read from the environment variable `password_env`."""

    host: str = "localhost"
    port: int = Field(587, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_env: str = "NEWSLETTER_SMTP_PASSWORD"
    connections: int = Field(4, ge=1, le=64)  # parallel connections, each reused
    rate_limit: float | None = Field(None, gt=0)  # messages per second across connections
    timeout: float = Field(30, gt=0)  # seconds per SMTP command


class DeliveryConfig(_Strict):
    """How messages leave: a local Maildir outbox (default) or an SMTP relay."""

    transport: Literal["outbox", "smtp"] = "outbox"
    outbox: str = "outbox/"  # a Maildir folder, relative to the config file
    max_consecutive_errors: int = Field(20, ge=1)  # then the run stops; a rerun resumes
    # how long one run keeps retrying deferred messages (4xx, greylisting) before it leaves them
    # to a later run; postgrey, the common greylister, waits 5 minutes
    retry_minutes: float = Field(15, ge=0, le=1440)
    max_attempts: int = Field(5, ge=1, le=100)  # tries per subscriber and issue, across runs
    # on a PostgreSQL state shared by several senders: how long rows a sender claimed stay its own
    # without its heartbeat; a sender that dies gives its rows back after this
    lease_seconds: float = Field(60, ge=2, le=3600)
    smtp: SmtpConfig = SmtpConfig()


class DkimConfig(_Strict):
    """DKIM signing with a private key file (PEM), relative to the config file."""

    domain: str = Field(min_length=1)
    selector: str = Field(min_length=1)
    key_path: str = Field(min_length=1)


class WebConfig(_Strict):
    """The subscription pages and archive (`newsletter serve`), and their abuse limits."""

    confirm_max_age_hours: float = Field(48, gt=0)  # a confirm link older than this has expired
    confirm_resend_hours: float = Field(24, ge=0)  # at most one confirmation email per address
    rate_limit_per_ip: int = Field(10, ge=1)  # sign-up and resend posts per IP address per hour
    blocked_domains: StrList = ()  # refuse sign-ups from these domains and their subdomains
    latest_issues: int = Field(5, ge=0)  # issues listed on the home page
    feed_entries: int = Field(20, ge=1)  # issues in /feed.xml

    @field_validator("blocked_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each domain in the IDNA form addresses are stored in (`bücher.example` is kept as
        `xn--bcher-kva.example`), so that the list matches them."""
        if not value:
            return value
        # loaded only for a config with a blocklist: most commands never need it
        from email_validator import EmailNotValidError, validate_email

        out = []
        for raw in value:
            domain = raw.lstrip("@").rstrip(".")
            try:
                valid = validate_email(
                    f"postmaster@{domain}", check_deliverability=False, allow_smtputf8=False
                )
            except EmailNotValidError as e:
                raise ValueError(f"'{raw}' is not a domain ({e})") from e
            out.append((valid.ascii_domain or valid.domain).lower())
        return tuple(out)


def _luminance(hex_colour: str) -> float:
    """Relative luminance of an sRGB colour (WCAG 2)."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


MIN_CONTRAST = 4.5  # WCAG AA for body text: the accent carries white text and is a link colour


class BrandConfig(_Strict):
    """How the email looks: an accent colour (header band, headings, links) and a logo."""

    accent: str = "#0b5cad"  # `#rrggbb`; white text on it must stay readable
    logo_url: str | None = None  # an https image shown in the header band (about 40 px tall)

    @field_validator("accent")
    @classmethod
    def _accent(cls, value: str) -> str:
        if re.fullmatch(r"#[0-9a-fA-F]{3}", value):
            value = "#" + "".join(c * 2 for c in value[1:])
        if not re.fullmatch(r"#[0-9a-fA-F]{6}", value):
            raise ValueError(f"'{value}' is not a colour; write it as #rrggbb (like #0b5cad)")
        contrast = 1.05 / (_luminance(value) + 0.05)
        if contrast < MIN_CONTRAST:
            raise ValueError(
                f"'{value}' is too light for white text (contrast {contrast:.1f}:1, needs "
                f"{MIN_CONTRAST}:1); pick a darker colour"
            )
        return value.lower()

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https://[^\s/]+/\S*$", value):
            raise ValueError(f"'{value}' is not an https URL (mail clients block plain http)")
        return value
