"""The command line: each command parses options, loads config and calls one package function.

The stages are imported inside the commands, not at the top: `newsletter --help` and the quick
commands then start in a fraction of the time the whole pipeline takes to import.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from newsletter import __version__
from newsletter.cli.onboarding import check, init
from newsletter.cli.options import (
    Group,
    check_issue_id,
    config_option,
    counts,
    examples,
    format_option,
    load_config,
    papers_option,
    stop_on_sigterm,
    subscribers_option,
)
from newsletter.cli.progress import ProgressBar
from newsletter.cli.subscribers import subscribers
from newsletter.cli.topics import topics

if TYPE_CHECKING:
    from newsletter.job import RunResult

log = logging.getLogger("newsletter")


@click.group(
    cls=Group,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(
        "newsletter init site && cd site    # a new digest folder",
        "newsletter preview --open          # this week's issue, as it would go out",
        "newsletter check --production      # what a real send still needs",
        "newsletter COMMAND --help          # a command's options and examples",
    ),
)
@click.version_option(__version__, prog_name="newsletter", help="Show the version and exit.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Turn the week's research papers into a topic-sectioned email digest.

    The config is --config FILE, else $NEWSLETTER_CONFIG, else ./config.yaml, else the bundled
    default; secrets come from the environment and from secrets.env beside the config.
    """
    ctx.obj = {"debug": debug}
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# -- papers -------------------------------------------------------------------------------------


@cli.command(
    epilog=examples(
        "newsletter papers sample",
        "newsletter papers papers.jsonl https://example.org/papers.json --format json",
        "newsletter papers saved-page.html --kind hf_page",
    )
)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--kind", help="Force the parser: hf_page, hf_api, arxiv or papers (default: detect)."
)
@format_option
def papers(sources: tuple[str, ...], kind: str | None, fmt: str) -> None:
    """List the papers read from files, URLs or the sample.

    SOURCE is a file, an http(s) URL, or `sample` (the bundled Daily Papers page); the format
    is detected from the content.
    """
    from newsletter.cli import output
    from newsletter.sources import read_sources

    found = read_sources(sources, kind=kind)
    click.echo(output.papers_json(found) if fmt == "json" else output.papers_table(found))
    counts(f"{len(found)} papers from {len(sources)} source(s)")


# -- the weekly job and its preview ---------------------------------------------------------------


@cli.command(
    epilog=examples(
        "newsletter run",
        "newsletter run --papers sample --subscribers subscribers.example.yaml",
        "newsletter run --dry-run",
    )
)
@config_option
@papers_option
@subscribers_option
@click.option(
    "--issue-id",
    callback=check_issue_id,
    help="Use this issue id instead of this week's (like 2026-W48).",
)
@click.option(
    "--dry-run", is_flag=True, help="Build the issue and count the audience; send nothing."
)
def run(
    config_path: str | None,
    papers: tuple[str, ...],
    subscribers_path: str | None,
    issue_id: str | None,
    dry_run: bool,
) -> None:
    """Build this week's issue and send it to everyone once.

    Reads the configured sources (or every --papers SOURCE), leaves out papers sent in earlier
    issues, archives the issue and delivers it to each subscriber not yet sent it. A second run
    sends only what is missing. Exits non-zero when a message failed or the run stopped early.
    """
    from newsletter.job import run_weekly

    config = load_config(config_path)
    with ProgressBar("sending") as progress, stop_on_sigterm() as stop:
        result = run_weekly(
            config,
            papers or None,
            subscribers=subscribers_path,
            issue_id=issue_id,
            dry_run=dry_run,
            progress=progress,
            stop=stop,
        )
    _finish(result)


@cli.command(epilog=examples("newsletter issues", "newsletter send 2026-W48"))
@click.argument("issue_id")
@config_option
@subscribers_option
def send(issue_id: str, config_path: str | None, subscribers_path: str | None) -> None:
    """Resume the delivery of an archived issue.

    Sends ISSUE_ID (like 2026-W48) to everyone in the audience not yet sent it.
    """
    from newsletter.job import send_issue

    config = load_config(config_path)
    with ProgressBar("sending") as progress, stop_on_sigterm() as stop:
        result = send_issue(
            config, issue_id, subscribers=subscribers_path, progress=progress, stop=stop
        )
    _finish(result)


def _finish(result: RunResult) -> None:
    if result.outbox is not None and result.report is not None and result.report.sent:
        click.echo(f"messages are in the outbox Maildir: {result.outbox}/new/", err=True)
    counts(f"run: {result.summary()}")
    if not result.ok:
        sys.exit(1)


@cli.command("issues", epilog=examples("newsletter issues", "newsletter issues --format json"))
@config_option
@format_option
def issues_cmd(config_path: str | None, fmt: str) -> None:
    """List the archived issues with their send counts.

    The counts are the ledger's: sent, failed, pending and skipped.
    """
    from newsletter.cli import output
    from newsletter.store import Store

    config = load_config(config_path)
    with Store.from_settings(config.state_settings()) as store:
        archived = store.archive.list_issues()
    click.echo(output.issues_json(archived) if fmt == "json" else output.issues_table(archived))
    counts(f"{len(archived)} issue(s) in the archive")


# -- schedule and web ---------------------------------------------------------------------------


@cli.command(epilog=examples("newsletter schedule", "newsletter schedule --next 5"))
@config_option
@click.option(
    "--next",
    "next_count",
    type=click.IntRange(min=1),
    help="Print the next N fire times and exit.",
)
def schedule(config_path: str | None, next_count: int | None) -> None:
    """Run the weekly job on its schedule until stopped.

    SIGINT or SIGTERM stop it cleanly: a send in progress finishes its current messages and
    keeps its ledger. It logs the next fire time at start and after each run.
    """
    from newsletter import schedule as sched

    config = load_config(config_path)
    if next_count is not None:
        for moment in sched.upcoming(config, next_count):
            click.echo(moment.isoformat())
        counts(f"schedule: next {next_count} run(s) in {sched.schedule_timezone(config).key}")
        return
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("newsletter").setLevel(logging.INFO)
    sched.run_forever(config)


@cli.command(
    epilog=examples("newsletter serve --port 8000", "newsletter serve --dev    # on a laptop")
)
@config_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (behind a reverse proxy, keep the default).",
)
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--dev", is_flag=True, help="Make a throwaway secret key when none is set.")
def serve(config_path: str | None, host: str, port: int, dev: bool) -> None:
    """Serve the web pages: subscribe, unsubscribe, archive.

    Pages: / (subscribe form and latest issues), /confirm, /unsubscribe (also the one-click
    target), /preferences, /issues and /feed.xml. Put it behind a reverse proxy with TLS.
    """
    from newsletter.web import serve as serve_web

    config = load_config(config_path)
    serve_web(config, host=host, port=port, dev=dev)


@cli.command(
    epilog=examples(
        "newsletter preview --open",
        "newsletter preview --papers sample --out /tmp/preview",
        "newsletter preview --serve --port 8025",
        "newsletter preview --subscribers subscribers.example.yaml",
    )
)
@config_option
@papers_option
@subscribers_option
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="preview",
    show_default=True,
    help="Folder for email.html, email.txt and index.html.",
)
@click.option("--issue-id", callback=check_issue_id, help="Use this issue id, not this week's.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in a browser.")
@click.option("--serve", is_flag=True, help="Serve the preview on localhost; rebuild on changes.")
@click.option("--port", default=8025, show_default=True, help="Port for --serve.")
def preview(
    config_path: str | None,
    papers: tuple[str, ...],
    subscribers_path: str | None,
    out_dir: str,
    issue_id: str | None,
    open_browser: bool,
    serve: bool,
    port: int,
) -> None:
    """Render the current issue to files, or serve it live.

    Writes DIR/email.html and DIR/email.txt (the exact parts `run` would send now) and
    DIR/index.html (desktop and phone widths side by side, the size against the budget), and
    says how many variants the audience would get. Nothing is sent.
    """
    from newsletter import preview as pv

    config = load_config(config_path)
    if serve:
        from newsletter.preview.server import serve as serve_preview

        serve_preview(
            config, papers, Path(out_dir), port=port, open_browser=open_browser, issue_id=issue_id
        )
        return
    result = pv.write_preview_from_sources(config, papers, Path(out_dir), issue_id=issue_id)
    if open_browser:
        import webbrowser

        webbrowser.open((Path(out_dir) / "index.html").resolve().as_uri())
    from newsletter.cli.audience import preview_audience

    given = Path(subscribers_path) if subscribers_path else None
    click.echo(preview_audience(config, given, [s.topic for s in result.sections]), err=True)
    counts(pv.summary_line(result))


cli.add_command(init)
cli.add_command(check)
cli.add_command(subscribers)
cli.add_command(topics)


def main() -> None:
    cli(prog_name="newsletter")
