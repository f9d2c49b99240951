"""`newsletter topics ...`: see how the keyword rules group papers, measure them, improve them.

The commands import what they use when they run, so that `newsletter --help` starts fast.
"""

from __future__ import annotations

import json
from collections import Counter

import click

from newsletter.cli.options import (
    Group,
    config_option,
    counts,
    examples,
    format_option,
    load_config,
)


@click.group(
    cls=Group,
    epilog=examples(
        "newsletter topics assign sample",
        "newsletter topics explain 2404.12345 sample",
        "newsletter topics eval labelled.jsonl",
        "newsletter topics suggest labelled.jsonl --per-topic 5",
    ),
)
def topics() -> None:
    """See how the keyword rules of the config group papers."""


@topics.command(
    "assign",
    epilog=examples(
        "newsletter topics assign sample",
        "newsletter topics assign papers.jsonl --config config.yaml --format json",
    ),
)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@config_option
@format_option
def topics_assign(sources: tuple[str, ...], config_path: str | None, fmt: str) -> None:
    """Assign every paper read from the sources to its topic.

    JSON lists each paper's id, title, topic, topics, score and the keywords that matched, each
    with its weight (how specific the keyword is).
    """
    from newsletter.cli import output
    from newsletter.sources import read_sources
    from newsletter.topics import assign_all, compile_topics

    config = load_config(config_path)
    found = read_sources(sources)
    assignments = assign_all(found, compile_topics(config.topic_rules, config.grouping))
    if fmt == "json":
        click.echo(output.assignments_json(found, assignments))
    else:
        click.echo(output.assignments_table(found, assignments))
    counts(output.topic_counts_line(config.topic_rules, assignments))


@topics.command(
    "explain",
    epilog=examples(
        "newsletter topics explain 2404.12345 sample",
        "newsletter topics explain 'An exact paper title' papers.jsonl",
    ),
)
@click.argument("paper_id")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@config_option
def topics_explain(paper_id: str, sources: tuple[str, ...], config_path: str | None) -> None:
    """Say which rule put one paper where, and the runner-up.

    PAPER_ID is an arXiv id or the paper's exact title. The paper is grouped with all the papers
    of the sources, as `topics assign` groups it: the keywords' weights come from them too.
    """
    from newsletter.cli import output
    from newsletter.sources import read_sources
    from newsletter.topics import assign_all, compile_topics, explain

    config = load_config(config_path)
    found = read_sources(sources)
    paper = output.find_paper(found, paper_id)
    assigned = assign_all(found, compile_topics(config.topic_rules, config.grouping))
    assignment = next(a for p, a in zip(found, assigned, strict=True) if p is paper)
    click.echo(explain(paper, assignment))
    counts(
        f"explain: {paper.id} -> {assignment.topic} (score {assignment.score:.1f}), "
        f"1 of {len(found)} papers"
    )


@topics.command(
    "eval",
    epilog=examples(
        "newsletter topics eval labelled.jsonl",
        "newsletter topics eval labelled.jsonl --config config.yaml --format json",
    ),
)
@click.argument("labelled", metavar="LABELLED")
@config_option
@format_option
def topics_eval(labelled: str, config_path: str | None, fmt: str) -> None:
    """Measure the rules against papers labelled by hand.

    LABELLED is JSON Lines (or a JSON list) of papers, each with a `topic`: a topic of the
    config, or Other. Prints accuracy, macro-F1, the share in Other, each topic's precision and
    recall, and the most frequent confusions with example titles.
    """
    from newsletter.cli import output
    from newsletter.sources.labelled import read_labelled
    from newsletter.topics import assign_all, compile_topics, evaluate

    config = load_config(config_path)
    names = config.topic_names
    rows = read_labelled(labelled, names)
    matcher = compile_topics(config.topic_rules, config.grouping)
    result = evaluate(rows, assign_all([x.paper for x in rows], matcher), names)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(output.evaluation_table(result))
    counts(
        f"eval: {result.n} papers, accuracy {result.accuracy:.1%}, "
        f"macro-F1 {result.macro_f1:.3f}, {result.other_rate:.1%} in Other"
    )


@topics.command(
    "suggest",
    epilog=examples(
        "newsletter topics suggest labelled.jsonl",
        "newsletter topics suggest labelled.jsonl --per-topic 5 --format table",
    ),
)
@click.argument("labelled", metavar="LABELLED")
@config_option
@click.option(
    "--per-topic",
    metavar="N",
    type=click.IntRange(1, 100),
    default=10,
    show_default=True,
    help="At most this many new keywords for each topic.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["yaml", "table"]),
    default="yaml",
    show_default=True,
    help="YAML of the new keywords to paste into the config, or a table with their counts.",
)
def topics_suggest(labelled: str, config_path: str | None, per_topic: int, fmt: str) -> None:
    """Suggest keywords for each topic from papers labelled by hand.

    Words and two-word phrases that a topic's papers in LABELLED (as for `topics eval`) use often
    and the other papers rarely do; keywords its rules already match are left out.
    """
    from newsletter.cli import output
    from newsletter.sources.labelled import read_labelled
    from newsletter.topics import suggest

    config = load_config(config_path)
    rows = read_labelled(labelled, config.topic_names)
    found = suggest(rows, config.topic_rules, per_topic)
    if fmt == "yaml":
        click.echo(output.suggestions_yaml(found))
    else:
        click.echo(output.suggestions_table(found, Counter(x.topic for x in rows)))
    total = sum(len(v) for v in found.values())
    counts(f"suggest: {total} keywords for {len(found)} topics from {len(rows)} labelled papers")
