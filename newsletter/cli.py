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
from newsletter.cli_audience import subscribers
from newsletter.cli_options import (
    FORMATS,
    Group,
    check_issue_id,
    config_option,
    counts,
    load_config,
    papers_option,
    stop_on_sigterm,
    subscribers_option,
)

log = logging.getLogger("newsletter")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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
    """List the papers read from files, http(s) URLs or `sample` (the bundled page)."""
    from newsletter import report
    from newsletter.sources import read_sources

    found = read_sources(sources, kind=kind)
    click.echo(report.papers_json(found) if fmt == "json" else report.papers_table(found))
    counts(f"{len(found)} papers from {len(sources)} source(s)")


# -- topics -------------------------------------------------------------------------------------


@cli.group()
def topics() -> None:
    """See how the keyword rules of the config group papers."""


@topics.command("assign")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@config_option
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def topics_assign(sources: tuple[str, ...], config_path: str | None, fmt: str) -> None:
    """Assign every paper of SOURCE... to its topic."""
    from newsletter import report
    from newsletter.grouping import assign_all, compile_topics
    from newsletter.sources import read_sources

    config = load_config(config_path)
    found = read_sources(sources)
    assignments = assign_all(found, compile_topics(config.topic_rules, config.grouping))
    if fmt == "json":
        click.echo(report.assignments_json(found, assignments))
    else:
        click.echo(report.assignments_table(found, assignments))
    counts(report.topic_counts_line(config.topic_rules, assignments))


@topics.command("explain")
@click.argument("paper_id")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@config_option
def topics_explain(paper_id: str, sources: tuple[str, ...], config_path: str | None) -> None:
    """Say which rule put PAPER_ID (an id or a title) where, and the runner-up."""
    from newsletter import report
    from newsletter.grouping import assign_all, compile_topics, explain
    from newsletter.sources import read_sources

    config = load_config(config_path)
    found = read_sources(sources)
    paper = report.find_paper(found, paper_id)
    # the whole batch, as `topics assign` groups it: the same weights and learned keywords
    assigned = assign_all(found, compile_topics(config.topic_rules, config.grouping))
    assignment = next(a for p, a in zip(found, assigned, strict=True) if p is paper)
    click.echo(explain(paper, assignment))
    counts(
        f"explain: {paper.id} -> {assignment.topic} (score {assignment.score:.1f}), "
        f"1 of {len(found)} papers"
    )


@topics.command("eval")
@click.argument("labelled", metavar="LABELLED")
@config_option
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def topics_eval(labelled: str, config_path: str | None, fmt: str) -> None:
    """Measure the rules against LABELLED (JSONL of papers, each with the `topic` expected)."""
    import json

    from newsletter.grouping import assign_all, compile_topics
    from newsletter.topic_eval import evaluate, evaluation_table, read_labelled

    config = load_config(config_path)
    names = [t.name for t in config.topic_rules]
    rows = read_labelled(labelled, names)
    papers = [x.paper for x in rows]
    assignments = assign_all(papers, compile_topics(config.topic_rules, config.grouping))
    result = evaluate(rows, assignments, names)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(evaluation_table(result))
    counts(
        f"eval: {result.n} papers, accuracy {result.accuracy:.1%}, "
        f"macro-F1 {result.macro_f1:.3f}, {result.other_rate:.1%} in Other"
    )


@topics.command("suggest")
@click.argument("labelled", metavar="LABELLED")
@config_option
@click.option("--per-topic", type=click.IntRange(1, 100), default=10, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["yaml", "table"]), default="yaml", show_default=True
)
def topics_suggest(labelled: str, config_path: str | None, per_topic: int, fmt: str) -> None:
    """Suggest keywords each topic's labelled papers use and the others rarely do."""
    from collections import Counter

    from newsletter.topic_eval import read_labelled
    from newsletter.topic_suggest import suggest, suggestions_table, suggestions_yaml

    config = load_config(config_path)
    rows = read_labelled(labelled, [t.name for t in config.topic_rules])
    found = suggest(rows, config.topic_rules, per_topic)
    if fmt == "yaml":
        click.echo(suggestions_yaml(found))
    else:
        click.echo(suggestions_table(found, Counter(x.topic for x in rows)))
    total = sum(len(v) for v in found.values())
    counts(f"suggest: {total} keywords for {len(found)} topics from {len(rows)} labelled papers")


# -- check --------------------------------------------------------------------------------------


@cli.command()
@config_option
@click.option("--smtp", is_flag=True, help="Also connect to the SMTP server, start TLS and log in.")
def check(config_path: str | None, smtp: bool) -> None:
    """Validate the config, sources, templates and subscribers; report every problem."""
    from newsletter.checks import run_checks

    config = load_config(config_path)
    problems = run_checks(config, smtp=smtp)
    for line in problems:
        click.echo(f"error: {line}", err=True)
    counts(f"check: {len(problems)} problem(s) in {config.path or 'bundled config'}")
    if problems:
        sys.exit(1)


# -- the weekly job and its preview ---------------------------------------------------------------


@cli.command()
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
    """Build this week's issue and deliver it to every subscriber exactly once."""
    from newsletter.job import run_weekly

    config = load_config(config_path)
    with _progress("sending") as progress, stop_on_sigterm() as stop:
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


@cli.command()
@click.argument("issue_id")
@config_option
@subscribers_option
def send(issue_id: str, config_path: str | None, subscribers_path: str | None) -> None:
    """Resume the delivery of the archived issue ISSUE_ID (send what is still missing)."""
    from newsletter.job import send_issue

    config = load_config(config_path)
    with _progress("sending") as progress, stop_on_sigterm() as stop:
        result = send_issue(
            config, issue_id, subscribers=subscribers_path, progress=progress, stop=stop
        )
    _finish(result)


def _finish(result: Any) -> None:
    if result.outbox is not None and result.report is not None and result.report.sent:
        click.echo(f"messages are in the outbox Maildir: {result.outbox}/new/", err=True)
    counts(f"run: {result.summary()}")
    if not result.ok:
        sys.exit(1)


class _progress:
    """A progress bar on a terminal (rich), nothing when output goes to a file or pipe."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.start()
        self.task = self.bar.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


@cli.command("issues")
@config_option
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
def issues_cmd(config_path: str | None, fmt: str) -> None:
    """List the archived issues with their send counts."""
    from newsletter import report
    from newsletter.store import Store

    config = load_config(config_path)
    with Store.from_config(config) as store:
        archived = store.list_issues()
    click.echo(report.issues_json(archived) if fmt == "json" else report.issues_table(archived))
    counts(f"{len(archived)} issue(s) in the archive")


# -- schedule and web ---------------------------------------------------------------------------


@cli.command()
@config_option
@click.option(
    "--next",
    "next_count",
    type=click.IntRange(min=1),
    help="Print the next N fire times and exit.",
)
def schedule(config_path: str | None, next_count: int | None) -> None:
    """Run the weekly job on its schedule until stopped (SIGINT/SIGTERM stop it cleanly)."""
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


@cli.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--dev", is_flag=True, help="Make a throwaway secret key when none is set.")
def serve(config_path: str | None, host: str, port: int, dev: bool) -> None:
    """Serve the web pages: subscribe, confirm, unsubscribe, preferences, archive, feed."""
    from newsletter.web import serve as serve_web

    config = load_config(config_path)
    serve_web(config, host=host, port=port, dev=dev)


@cli.command()
@config_option
@papers_option
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), default="preview", show_default=True
)
@click.option("--issue-id", callback=check_issue_id, help="Use this issue id, not this week's.")
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

    config = load_config(config_path)
    if serve:
        from newsletter.preview_server import serve as serve_preview

        serve_preview(
            config, papers, Path(out_dir), port=port, open_browser=open_browser, issue_id=issue_id
        )
        return
    result = pv.write_preview_from_sources(config, papers, Path(out_dir), issue_id=issue_id)
    if open_browser:
        import webbrowser

        webbrowser.open((Path(out_dir) / "index.html").resolve().as_uri())
    counts(pv.summary_line(result))


cli.add_command(subscribers)


def main() -> None:
    cli(prog_name="newsletter")
