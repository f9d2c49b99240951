"""`newsletter init` and `newsletter check`: from an empty folder to a setup ready to send.

Like the other commands, these import what they use when they run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from newsletter.cli.options import config_option, counts, examples, load_config, subscribers_option


def _nameserver(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a --nameserver that is not IP[:PORT] before anything runs, in one line."""
    if value is not None:
        from newsletter.cli.dns_records import split_nameserver

        try:
            split_nameserver(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


@click.command(
    epilog=examples(
        "newsletter init site && cd site && newsletter check",
        "newsletter init .                  # into the current folder",
    )
)
@click.argument("folder", default=".", metavar="[DIR]", type=click.Path(path_type=Path))
def init(folder: Path) -> None:
    """Make a new digest folder: config, subscribers, secrets.

    Writes DIR/config.yaml (commented, with the default topics), subscribers.yaml (the example
    list), secrets.env (a fresh NEWSLETTER_SECRET_KEY, mode 600) and a .gitignore that keeps
    the secrets and the state out of git. It never overwrites a file: if one exists, nothing is
    written. Commands run inside DIR find config.yaml and secrets.env there.
    """
    from newsletter.cli.scaffold import NEXT_STEPS, make_folder

    made = make_folder(folder)
    click.echo(f"made {folder}/: {', '.join(made.files)}")
    click.echo("next steps:")
    steps = list(NEXT_STEPS)
    if folder.resolve() != Path.cwd().resolve():
        steps[0] = f"cd {folder}, then {steps[0]}"
    for i, step in enumerate(steps, 1):
        click.echo(f"  {i}. {step}")
    counts(f"init: {len(made.files)} files written in {folder}")


@click.command(
    epilog=examples(
        "newsletter check",
        "newsletter check --subscribers subscribers.example.yaml",
        "newsletter check --production --smtp",
        "newsletter check --production --nameserver 9.9.9.9",
    )
)
@config_option
@subscribers_option
@click.option("--smtp", is_flag=True, help="Also connect to the SMTP relay, start TLS and log in.")
@click.option(
    "--production",
    is_flag=True,
    help="Also report what a real send still needs, one line per item with what to do.",
)
@click.option(
    "--nameserver",
    metavar="IP[:PORT]",
    callback=_nameserver,
    help="Ask this DNS server for the sender domain's records (default: the system resolver).",
)
def check(
    config_path: str | None,
    subscribers_path: str | None,
    smtp: bool,
    production: bool,
    nameserver: str | None,
) -> None:
    """Report every problem in the config, sources and subscribers.

    Validates the config, the sources it names, the templates (and the MJML validator's verdict
    where `npm ci` installed it), the subscribers file and the secrets; lists every problem.
    --production adds the readiness report: an https public base_url, a postal address, SPF,
    DKIM and DMARC for the sender's domain, a DKIM key matching its DNS record, a TLS relay
    (with --smtp: reached, logged in, and its SIZE limit above the largest message) and a long
    secret key. It exits non-zero while a must-have fails or could not be checked.
    """
    from newsletter.cli.checks import run_checks, setup_warnings

    config = load_config(config_path)
    given = Path(subscribers_path) if subscribers_path else None
    problems = run_checks(config, smtp=smtp and not production, subscribers=given)
    # --production's report says the same things (https base_url, postal address) as must-haves
    warnings = [] if production else setup_warnings(config)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    for line in warnings:
        click.echo(f"warning: {line}", err=True)
    where = config.path or "bundled config"
    if not production:
        counts(f"check: {len(problems)} problem(s), {len(warnings)} warning(s) in {where}")
        sys.exit(1 if problems else 0)
    from newsletter.cli import readiness
    from newsletter.cli.dns_records import resolver_lookup

    lookup = resolver_lookup(nameserver) if nameserver else None
    items = readiness.production_report(config, smtp=smtp, lookup=lookup, subscribers=given)
    for item in items:
        click.echo(item.line())
    counts(f"check --production: {len(problems)} problem(s), {readiness.summary(items)} in {where}")
    if problems or any(item.blocking for item in items):
        sys.exit(1)
