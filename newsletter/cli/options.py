"""Options and output helpers shared by the command modules.

Like the commands, this imports the stages (even the config, which loads pydantic) only when a
command runs, so that `newsletter --help` starts fast.
"""

from __future__ import annotations

import re
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Config

Command = TypeVar("Command", bound=Callable[..., None])

CONFIG_HELP = "Config file (default: $NEWSLETTER_CONFIG, ./config.yaml, else the bundled one)."
FORMATS = click.Choice(["table", "json"])


class Group(click.Group):
    """Turn every `NewsletterError` into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(e).splitlines() or [type(e).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)


def config_option(f: Command) -> Command:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP
    )(f)


def papers_option(f: Command) -> Command:
    return click.option(
        "--papers",
        "papers",
        multiple=True,
        metavar="SOURCE",
        help="Use these papers instead of the configured sources (repeatable): a file, an "
        "http(s) URL, or `sample` for the bundled Daily Papers page.",
    )(f)


def subscribers_option(f: Command) -> Command:
    return click.option(
        "--subscribers",
        "subscribers_path",
        type=click.Path(dir_okay=False),
        help="Use this subscribers file instead of the config's `subscribers:`.",
    )(f)


def check_issue_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An issue id goes into URLs and file names: letters, digits, '.', '_' and '-' only."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise click.BadParameter(f"'{value}' is not an issue id; use a week like 2026-W48")
    return value


def load_config(path: str | None) -> Config:
    from newsletter.config import load_config

    return load_config(path)


def counts(text: str) -> None:
    """Every run ends with one line of counts (on stderr, so JSON on stdout stays clean)."""
    click.echo(text, err=True)


@contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event SIGTERM sets, so a send finishes its messages in flight and keeps its ledger."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        click.echo("SIGTERM: finishing the messages in flight, then stopping", err=True)
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGTERM, previous)
