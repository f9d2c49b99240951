"""Load `config.yaml` once, validate it, and report every problem together.

`Config` is the whole file; each pipeline stage takes only its own section of it (`sections.py`
for the keys as written, `stages.py` for what a stage needs, paths resolved).
"""

from newsletter.config.loading import load_config, parse_config
from newsletter.config.schema import Config
from newsletter.config.sections import (
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
    TopicConfig,
    UrlSource,
    WebConfig,
)

__all__ = [
    "SOURCE_KINDS",
    "ArxivSource",
    "BrandConfig",
    "Config",
    "DeliveryConfig",
    "DkimConfig",
    "FileSource",
    "GroupingConfig",
    "HfDailySource",
    "ScheduleConfig",
    "SenderConfig",
    "SmtpConfig",
    "SourceSpec",
    "TopicConfig",
    "UrlSource",
    "WebConfig",
    "load_config",
    "parse_config",
]
