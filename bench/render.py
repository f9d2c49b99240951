"""Time building and rendering an issue, stage by stage, and the whole `newsletter preview`.

Run by hand: `python bench/render.py [--runs 7]`. Prints the median of N warm runs of each
stage for the bundled 83-paper sample and for a generated 1,000-paper issue, the HTML size of
each, and the wall time of a fresh `newsletter preview --papers sample` process (goal: < 1 s).

Stages: build (window, grouping, ranking), template (Jinja → MJML source), MJML (mjml-python),
premailer (CSS inlining), text (the text twin), each timed for one pass showing every paper;
then `render_issue` as a whole (which re-renders until the HTML fits `size_budget_kb`) and
`write_preview` (render plus the three files).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter import resources  # noqa: E402
from newsletter.config import Config, parse_config  # noqa: E402
from newsletter.models import Paper  # noqa: E402
from newsletter.preview import files as preview  # noqa: E402
from newsletter.render import renderer as render  # noqa: E402
from newsletter.render.blurbs import tidy_text  # noqa: E402
from newsletter.render.context import Plan, build_context  # noqa: E402
from newsletter.sources import read_source  # noqa: E402
from newsletter.topics.issue import build_issue  # noqa: E402

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FILLER = ["we", "propose", "a", "method", "that", "improves", "results", "on", "benchmarks"]
FILLER += ["with", "fewer", "parameters", "and", "less", "compute", "than", "prior", "work"]


def generated(config: Config, n: int) -> list[Paper]:
    """Return `n` papers whose titles carry the config's keywords, so they spread over topics."""
    rng = random.Random(48)
    keywords = [k for t in config.topic_rules for k in t.keywords] or ["model"]
    papers = []
    for i in range(n):
        aid = f"2611.{i:05d}"
        topic_words = rng.sample(keywords, k=min(2, len(keywords)))
        title = (
            f"{topic_words[0].title()} for {' '.join(rng.sample(FILLER, 5))} with {topic_words[-1]}"
        )
        abstract = " ".join(rng.choice(FILLER) for _ in range(rng.randint(120, 220))).capitalize()
        papers.append(
            Paper(
                id=aid,
                title=title,
                authors=tuple(f"Author {i}-{j} Example" for j in range(rng.randint(1, 12))),
                abstract=abstract + ".",
                url=f"https://arxiv.org/abs/{aid}",
                pdf_url=f"https://arxiv.org/pdf/{aid}",
                code_url=f"https://github.com/example/p{i}" if i % 3 == 0 else None,
                published=NOW - timedelta(hours=rng.randint(1, 160)),
                upvotes=rng.randint(0, 300),
                source="file",
            )
        )
    return papers


FIRST_CALL: dict[str, float] = {}


def median_ms(fn: Callable[[], Any], runs: int, name: str = "") -> tuple[float, Any]:
    """Run `fn` once to warm caches, then `runs` times; return the median in ms and a result."""
    t = time.perf_counter()
    result = fn()
    FIRST_CALL.setdefault(name, (time.perf_counter() - t) * 1000)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


def bench_issue(label: str, papers: list[Paper], config: Config, runs: int) -> None:
    build_ms, issue = median_ms(
        lambda: build_issue(papers, config.issue_settings(), now=NOW, use_window=False), runs
    )
    env = render.environment(config)
    links = {
        "unsubscribe": render.UNSUBSCRIBE_PLACEHOLDER,
        "preferences": render.PREFERENCES_PLACEHOLDER,
    }
    plan = Plan(config.summary_chars, tuple(len(s.papers) for s in issue.sections))

    def context() -> dict[str, Any]:
        return build_context(issue, issue.sections, config.render_settings(), plan, links)

    template_ms, source = median_ms(
        lambda: env.get_template(render.HTML_TEMPLATE).render(context()), runs
    )
    mjml_ms, compiled = median_ms(lambda: render.compile_mjml(source), runs)
    premailer_ms, html = median_ms(lambda: render.inline_css(compiled), runs, "premailer")
    text_ms, _ = median_ms(
        lambda: tidy_text(env.get_template(render.TEXT_TEMPLATE).render(context())), runs
    )
    render_ms, email = median_ms(
        lambda: render.render_issue(issue, config.render_settings()), runs, label
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_ms, _ = median_ms(
            lambda: preview.write_preview(config, papers, Path(tmp), now=NOW), runs
        )

    print(f"{label}: {issue.paper_count} papers in {len(issue.sections)} sections")
    print(f"  build_issue                {build_ms:8.1f} ms")
    print(
        f"  one pass, every paper:     template {template_ms:.1f} ms, MJML {mjml_ms:.1f} ms, "
        f"premailer {premailer_ms:.1f} ms, text {text_ms:.1f} ms"
    )
    html_kb, source_kb = len(html.encode()) / 1000, len(source.encode()) / 1000
    print(f"    HTML {html_kb:.1f} KB (MJML source {source_kb:.1f} KB)")
    print(
        f"  render_issue (fits budget) {render_ms:8.1f} ms  -> "
        f"HTML {email.size_bytes / 1000:.1f} KB of {config.size_budget_kb} KB, "
        f"{email.papers_shown} shown, {email.web_only} web-only"
    )
    print(f"  write_preview              {write_ms:8.1f} ms")
    print(
        f"  first calls in this process: render_issue {FIRST_CALL[label]:.0f} ms, "
        f"premailer {FIRST_CALL['premailer']:.0f} ms (imports, regex compiles, premailer caches)"
    )


def bench_process(runs: int) -> None:
    """Wall time of whole `newsletter preview --papers sample` processes (imports included)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("NEWSLETTER_CONFIG", None)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "newsletter", "preview", "--papers", "sample", "--out", tmp]
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=tmp, env=env)
            times.append((time.perf_counter() - t) * 1000)
    print(
        f"process `newsletter preview --papers sample`: median {statistics.median(times):.0f} ms, "
        f"max {max(times):.0f} ms over {runs} runs (goal: under 1,000 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measure (median)")
    args = parser.parse_args()
    config = parse_config(resources.default_config_text(), "config.yaml (bundled)", ROOT)
    print(f"median of {args.runs} warm runs each")
    bench_issue("sample", read_source("sample"), config, args.runs)
    bench_issue("generated", generated(config, 1000), config, args.runs)
    bench_process(args.runs)


if __name__ == "__main__":
    main()
