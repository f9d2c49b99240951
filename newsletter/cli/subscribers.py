"""`newsletter subscribers ...`: see and change the audience (the state, never the file).

The commands import what they use when they run, so that `newsletter --help` starts fast.
"""

from __future__ import annotations

import sys

import click

from newsletter.cli.options import FORMATS, config_option, counts, load_config


@click.group()
def subscribers() -> None:
    """See and change the audience (the state; the hand-written file is never rewritten)."""


@subscribers.command("list")
@config_option
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def subscribers_list(config_path: str | None, fmt: str) -> None:
    """Show everyone: file and web subscribers, their topics, status and suppression."""
    from newsletter.cli import audience

    config = load_config(config_path)
    rows, problems = audience.audience_rows(config)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    text = audience.rows_json(rows) if fmt == "json" else audience.rows_table(rows)
    click.echo(text)
    counts(audience.counts_line(rows))


@subscribers.command("add")
@click.argument("email")
@config_option
@click.option("--name", help="The subscriber's name.")
@click.option("--topics", help="Comma-separated topic names (default: all topics).")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html")
def subscribers_add(
    email: str, config_path: str | None, name: str | None, topics: str | None, fmt: str
) -> None:
    """Add EMAIL to the state as a confirmed subscriber (clears an earlier unsubscribe)."""
    from newsletter.cli import audience

    config = load_config(config_path)
    line = audience.add(config, email, name=name, topics=topics, fmt=fmt)
    counts(line)


@subscribers.command("remove")
@click.argument("email")
@config_option
def subscribers_remove(email: str, config_path: str | None) -> None:
    """Stop all mail to EMAIL (a suppression that wins over the subscribers file)."""
    from newsletter.cli import audience

    config = load_config(config_path)
    counts(audience.remove(config, email))


@subscribers.command("unbounce")
@click.argument("emails", nargs=-1, metavar="[EMAIL]...")
@config_option
@click.option(
    "--reply",
    metavar="TEXT",
    help="Every bounce whose recorded server reply contains TEXT (like 5.1.8).",
)
def subscribers_unbounce(
    emails: tuple[str, ...], config_path: str | None, reply: str | None
) -> None:
    """Lift bounce suppressions made in error: of EMAIL..., or of every bounce matching --reply.

    `newsletter subscribers list` shows each suppression's reason and the server's reply.
    Unsubscribes are never lifted here.
    """
    from newsletter.cli import audience

    if not emails and reply is None:
        raise click.UsageError("give EMAIL... or --reply TEXT")
    config = load_config(config_path)
    lifted, line = audience.unbounce(config, emails, reply)
    for email in lifted:
        click.echo(email)
    counts(line)


@subscribers.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@config_option
def subscribers_import(path: str, config_path: str | None) -> None:
    """Import a YAML or CSV list (email,name,topics,format) into the state as confirmed."""
    from newsletter.audience import import_subscribers
    from newsletter.store import Store

    config = load_config(config_path)
    with Store.from_config(config) as store:
        result = import_subscribers(path, store, config.topic_names)
    for problem in result.problems:
        click.echo(f"warning: {problem} (skipped)", err=True)
    counts(
        f"import: {result.added} added, {result.existing} already there, "
        f"{len(result.problems)} skipped"
    )
    if result.problems:
        sys.exit(1)
