"""The command line: each command parses options, loads config and calls one package function.

Imports of the heavy stages happen inside the commands, so `newsletter --help` and the quick
commands start fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from newsletter import __version__
from newsletter.errors import NewsletterError

log = logging.getLogger("newsletter")

CONFIG_HELP = "Config file (default: ./config.yaml, else the bundled default)."
FORMATS = click.Choice(["table", "json"])


class _Group(click.Group):
    """Turn every `NewsletterError` into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsletterError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(e).splitlines() or [type(e).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(e.exit_code)


def _config_option(f: Any) -> Any:
    return click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help=CONFIG_HELP
    )(f)


def _papers_option(f: Any) -> Any:
    return click.option(
        "--papers",
        "papers",
        multiple=True,
        metavar="SOURCE",
        help="Use these papers instead of the configured sources (repeatable): a file, an "
        "http(s) URL, or `sample` for the bundled Daily Papers page.",
    )(f)


def _load_config(path: str | None) -> Any:
    from newsletter.config import load_config

    return load_config(path)


def _counts(text: str) -> None:
    """Every run ends with one line of counts (on stderr, so JSON on stdout stays clean)."""
    click.echo(text, err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsletter")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, debug: bool) -> None:
    """Turn the week's research papers into a topic-sectioned email digest."""
    ctx.obj = {"debug": debug}
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# -- papers -------------------------------------------------------------------------------------


@cli.command()
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--kind", help="Force the parser: hf_page, hf_api, arxiv or papers (default: detect)."
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def papers(sources: tuple[str, ...], kind: str | None, fmt: str) -> None:
    """Parse SOURCE... (files, http(s) URLs or `sample`) and list the papers."""
    from newsletter import report
    from newsletter.sources import read_sources

    found = read_sources(sources, kind=kind)
    click.echo(report.papers_json(found) if fmt == "json" else report.papers_table(found))
    _counts(f"{len(found)} papers from {len(sources)} source(s)")


# -- topics -------------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """See how the keyword rules of the config group papers."""


@topics.command("assign")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_config_option
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def topics_assign(sources: tuple[str, ...], config_path: str | None, fmt: str) -> None:
    """Assign every paper of SOURCE... to its topic."""
    from newsletter import report
    from newsletter.grouping import assign_all, compile_topics
    from newsletter.sources import read_sources

    config = _load_config(config_path)
    found = read_sources(sources)
    assignments = assign_all(found, compile_topics(config.topic_rules, config.grouping))
    if fmt == "json":
        click.echo(report.assignments_json(found, assignments))
    else:
        click.echo(report.assignments_table(found, assignments))
    _counts(report.topic_counts_line(config.topic_rules, assignments))


@topics.command("explain")
@click.argument("paper_id")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_config_option
def topics_explain(paper_id: str, sources: tuple[str, ...], config_path: str | None) -> None:
    """Say which rule put PAPER_ID (an id or a title) where, and the runner-up."""
    from newsletter import report
    from newsletter.grouping import compile_topics, explain
    from newsletter.sources import read_sources

    config = _load_config(config_path)
    paper = report.find_paper(read_sources(sources), paper_id)
    matcher = compile_topics(config.topic_rules, config.grouping)
    click.echo(explain(paper, matcher.assign(paper)))


# -- check --------------------------------------------------------------------------------------


@cli.command()
@_config_option
def check(config_path: str | None) -> None:
    """Validate the config and the templates; report every problem."""
    from newsletter.checks import run_checks

    config = _load_config(config_path)
    problems = run_checks(config)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    _counts(f"check: {len(problems)} problem(s) in {config.path or 'bundled config'}")
    if problems:
        sys.exit(1)


# -- the weekly job and its preview ---------------------------------------------------------------


@cli.command()
@_config_option
@_papers_option
@click.option("--issue-id", help="Use this issue id instead of this week's (like 2026-W48).")
def run(config_path: str | None, papers: tuple[str, ...], issue_id: str | None) -> None:
    """Build this week's issue (delivery arrives with subscribers; until then it is printed)."""
    from newsletter.job import build_current_issue

    config = _load_config(config_path)
    issue, rendered = build_current_issue(config, papers or None, issue_id=issue_id)
    click.echo(rendered.text)
    _counts(
        f"run: issue {issue.id}: {issue.paper_count} papers in {len(issue.sections)} sections, "
        f"{issue.web_only_count} web-only, HTML {len(rendered.html.encode()) / 1000:.1f} KB"
    )


@cli.command()
@_config_option
@_papers_option
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), default="preview", show_default=True
)
@click.option("--issue-id", help="Use this issue id instead of this week's.")
@click.option("--open", "open_browser", is_flag=True, help="Open the preview in a browser.")
@click.option("--serve", is_flag=True, help="Serve the preview on localhost; rebuild on changes.")
@click.option("--port", default=8025, show_default=True, help="Port for --serve.")
def preview(
    config_path: str | None,
    papers: tuple[str, ...],
    out_dir: str,
    issue_id: str | None,
    open_browser: bool,
    serve: bool,
    port: int,
) -> None:
    """Render the current issue to DIR/email.html, email.txt and a side-by-side index.html."""
    from newsletter import preview as pv

    config = _load_config(config_path)
    if serve:
        pv.serve_preview(config, papers, Path(out_dir), port=port, open_browser=open_browser)
        return
    result = pv.write_preview_from_sources(config, papers, Path(out_dir), issue_id=issue_id)
    if open_browser:
        import webbrowser

        webbrowser.open((Path(out_dir) / "index.html").resolve().as_uri())
    _counts(pv.summary_line(result))


def main() -> None:
    cli(prog_name="newsletter")
