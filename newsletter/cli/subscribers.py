"""`newsletter subscribers ...`: see and change the audience (the state, never the file).

The commands import what they use when they run, so that `newsletter --help` starts fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.options import (
    Group,
    config_option,
    counts,
    examples,
    format_option,
    load_config,
    subscribers_option,
)


@click.group(
    cls=Group,
    epilog=examples(
        "newsletter subscribers list",
        "newsletter subscribers add ann@example.org --topics 'LLM Reasoning'",
        "newsletter subscribers remove ann@example.org",
        "newsletter subscribers import list.csv",
        "newsletter subscribers unbounce --reply 5.1.8",
    ),
)
def subscribers() -> None:
    """See and change the audience.

    Changes go to the state; the hand-written subscribers file is never rewritten.
    """


@subscribers.command(
    "list",
    epilog=examples(
        "newsletter subscribers list",
        "newsletter subscribers list --subscribers subscribers.example.yaml --format json",
    ),
)
@config_option
@subscribers_option
@format_option
def subscribers_list(config_path: str | None, subscribers_path: str | None, fmt: str) -> None:
    """Show everyone: file and web subscribers, topics, status.

    Each address with its source (file, web, cli), status, suppression, format and topics;
    the last line counts who receives the next issue.
    """
    from newsletter.cli import audience

    config = load_config(config_path)
    given = Path(subscribers_path) if subscribers_path else None
    rows, problems = audience.audience_rows(config, given)
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)
    text = audience.rows_json(rows) if fmt == "json" else audience.rows_table(rows)
    click.echo(text)
    counts(audience.counts_line(rows))


@subscribers.command(
    "add",
    epilog=examples(
        "newsletter subscribers add ann@example.org",
        "newsletter subscribers add bob@example.org --name Bob --format text",
        "newsletter subscribers add carol@example.org --topics 'LLM Reasoning,Speech & Audio'",
    ),
)
@click.argument("email")
@config_option
@click.option("--name", help="The subscriber's name.")
@click.option("--topics", help="Comma-separated topic names (default: all topics).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "text"]),
    default="html",
    show_default=True,
    help="html (with a plain-text part) or text (plain text only).",
)
def subscribers_add(
    email: str, config_path: str | None, name: str | None, topics: str | None, fmt: str
) -> None:
    """Add EMAIL to the state as a confirmed subscriber.

    This lifts an earlier unsubscribe of the address.
    """
    from newsletter.cli import audience

    config = load_config(config_path)
    line = audience.add(config, email, name=name, topics=topics, fmt=fmt)
    counts(line)


@subscribers.command("remove", epilog=examples("newsletter subscribers remove ann@example.org"))
@click.argument("email")
@config_option
def subscribers_remove(email: str, config_path: str | None) -> None:
    """Stop all mail to EMAIL, whichever list names it.

    A suppression in the state, which wins over the subscribers file.
    """
    from newsletter.cli import audience

    config = load_config(config_path)
    counts(audience.remove(config, email))


@subscribers.command(
    "unbounce",
    epilog=examples(
        "newsletter subscribers unbounce ann@example.org",
        "newsletter subscribers unbounce --reply 5.1.8",
    ),
)
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
    """Lift bounce suppressions made in error (see `list` for why).

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


@subscribers.command(
    "import",
    epilog=examples(
        "newsletter subscribers import list.csv", "newsletter subscribers import people.yaml"
    ),
)
@click.argument("path", type=click.Path(dir_okay=False))
@config_option
def subscribers_import(path: str, config_path: str | None) -> None:
    """Import a YAML or CSV list into the state as confirmed.

    CSV columns: email,name,topics,format (topics separated by ";"). Bad rows are reported
    with their line and skipped.
    """
    from newsletter.audience import import_subscribers
    from newsletter.store import Store

    config = load_config(config_path)
    with Store.from_settings(config.state_settings()) as store:
        result = import_subscribers(path, store, config.topic_names)
    for problem in result.problems:
        click.echo(f"warning: {problem} (skipped)", err=True)
    counts(
        f"import: {result.added} added, {result.existing} already there, "
        f"{len(result.problems)} skipped"
    )
    if result.problems:
        sys.exit(1)
