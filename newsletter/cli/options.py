"""Options and output helpers shared by the command modules.

Like the commands, this imports the stages (even the config, which loads pydantic) only when a
command runs, so that `newsletter --help` starts fast.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from newsletter.errors import NewsletterError, NotFoundError, SecretsFileError

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)

Command = TypeVar("Command", bound=Callable[..., None])
# Beside config.yaml, `newsletter init` writes the secrets here (KEY=value lines, the format of a
# systemd EnvironmentFile); commands read it for the variables the environment does not set.
SECRETS_FILE = "secrets.env"

CONFIG_HELP = "Config file (default: $NEWSLETTER_CONFIG, ./config.yaml, else the bundled one)."
FORMATS = click.Choice(["table", "json"])


class Group(click.Group):
    """Turn every `NewsletterError` into one line on stderr and a non-zero exit; list the
    commands with their whole one-line summaries (click cuts them with "..." to fit)."""

    group_class = type  # subgroups are of this class too

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(e).splitlines() or [type(e).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)


def examples(*lines: str) -> str:
    """A command's epilog: example command lines, kept as written (click's no-rewrap mark)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


FORMAT_HELP = "Print an aligned table, or JSON for scripts."


def format_option(f: Command) -> Command:
    return click.option(
        "--format", "fmt", type=FORMATS, default="table", show_default=True, help=FORMAT_HELP
    )(f)


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


def _existing_subscribers(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> str | None:
    # before anything runs: a typo must not send to nobody, or preview and then fail
    if value is not None and not Path(value).is_file():
        raise NotFoundError(f"{value}: no such subscribers file; check --subscribers")
    return value


def subscribers_option(f: Command) -> Command:
    return click.option(
        "--subscribers",
        "subscribers_path",
        type=click.Path(dir_okay=False),
        callback=_existing_subscribers,
        help="Read the audience from this subscribers file instead of the config's "
        "`subscribers:` (the state's subscribers still count).",
    )(f)


def check_issue_id(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An issue id goes into URLs and file names: letters, digits, '.', '_' and '-' only."""
    if value is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        raise click.BadParameter(f"'{value}' is not an issue id; use a week like 2026-W48")
    return value


def load_config(path: str | None) -> Config:
    """Load the config, then the secrets file beside it (for what the environment lacks)."""
    from newsletter.config import load_config

    config = load_config(path)
    if config.path is not None:
        read_secrets_file(config.path.parent / SECRETS_FILE)
    return config


def read_secrets_file(path: Path, environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Set the variables of a `KEY=value` file that `environ` lacks; return their names.

    Starlette's env-file reader (already a dependency of the web side) parses it: `#` comments,
    optional quotes. The environment wins, so a service manager or a shell can override a line.
    """
    if not path.is_file():
        return []
    from starlette.config import Config as EnvFile

    environ = os.environ if environ is None else environ
    try:
        values = EnvFile(path).file_values
    except (OSError, UnicodeDecodeError) as e:
        raise SecretsFileError(f"{path}: cannot read the secrets file ({e})") from e
    added = [key for key, value in values.items() if key not in environ and value]
    for key in added:
        environ[key] = values[key]
    log.debug("%s: read %s (values hidden)", path, ", ".join(added) or "nothing new")
    return added


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
