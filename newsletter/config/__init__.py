"""Load `config.yaml` once, validate it, and report every problem together."""

from newsletter.config.loading import Config, load_config, parse_config

__all__ = ["Config", "load_config", "parse_config"]
