"""Measure the sample email as a subscriber meets it: summaries, length on a phone, spam score.

Run by hand: `python3 bench/digest.py [--compare REF]`. Builds the bundled 83-paper sample issue
with the default config (plus a real-looking `base_url` and sender, as a deployment has), and
prints, for the working tree and, with `--compare`, for a git ref with the same package layout
(one sub-package per stage, like main; exported to a temp folder and measured by this same
script, in the same run):

- contribution sentences: papers in the email whose abstract says what the paper does ("We
  propose/introduce/present ...", "This paper presents ...") and how many show that sentence
  whole in their summary; the same over every paper of the issue's web page where it has them;
- summaries cut mid-sentence (ending in "…" or without closing punctuation);
- papers in the email, papers behind a "+N more" link, and any paper in neither;
- the HTML size; the email's height at 375 px in headless Chromium; horizontal overflow at
  320, 375 and 800 px; the smallest font size of any visible text;
- SpamAssassin's score (`spamassassin -L -t`) for a message delivered to the outbox.

The contribution detector here is deliberately narrower than the package's extractor and
written separately, so the number cannot agree with the extractor by construction.
"""

from __future__ import annotations

import argparse
import json
import mailbox
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
EXTRA_CONFIG = (
    "\nbase_url: https://news.example.org\n"
    "sender: {name: Papers of the week, address: digest@example.org}\n"
    "unsubscribe_mailto: leave@example.org\n"
)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# A sentence that states the paper's contribution in the words the issue names.
CONTRIBUTION = re.compile(
    r"\b(?:we|this (?:paper|work|study|report))\s+(?:\w+ly\s+)?(?:propose|introduce|present)s?\b",
    re.I,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[])")
CLOSED = re.compile(r"[.!?][\"')\]]*$")

PAGE_PROBE = """(width) => {
  const vis = (el) => el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  let smallest = 1e9, where = "";
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    if (!el || !vis(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (box.width < 1 || box.height < 1) continue;
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (size < smallest) { smallest = size; where = node.textContent.trim().slice(0, 40); }
  }
  return {height: document.documentElement.scrollHeight,
          width: document.documentElement.scrollWidth, smallest, where};
}"""


def norm(text: str) -> str:
    return " ".join(text.split())


def email_papers(html: str) -> dict[str, str]:
    """Title -> summary of every paper card in the email."""
    import lxml.html  # type: ignore[import-untyped]

    doc = lxml.html.fromstring(html)
    out = {}
    for block in doc.find_class("paper"):
        title = norm(block.find_class("title")[0].text_content())
        summary = block.find_class("summary")
        out[title] = norm(summary[0].text_content()) if summary else ""
    return out


def more_counts(html: str) -> int:
    import lxml.html  # type: ignore[import-untyped]

    doc = lxml.html.fromstring(html)
    total = 0
    for el in doc.find_class("more"):
        found = re.search(r"\+(\d+) more", el.text_content())
        total += int(found.group(1)) if found else 0
    return total


def contribution_stats(papers: list[Any], summaries: dict[str, str]) -> tuple[int, int]:
    """(papers whose abstract has a contribution sentence, of those how many show one whole)."""
    having = showing = 0
    for paper in papers:
        title = norm(paper.title)
        if title not in summaries:
            continue
        found = [s for s in SENTENCE_END.split(norm(paper.abstract)) if CONTRIBUTION.search(s)]
        if not found:
            continue
        having += 1
        showing += any(s in summaries[title] for s in found)
    return having, showing


def build_and_render(papers: list[Any], config: Any) -> tuple[Any, Any]:
    """The sample issue and its email, as `newsletter run` makes them."""
    from newsletter.render.renderer import render_issue
    from newsletter.topics.issue import build_issue

    issue = build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )
    return issue, render_issue(issue, config.render_settings())


def web_summaries(issue: Any, config: Any) -> dict[str, str]:
    """Title -> summary the issue's web page shows (the email's summary where it has one)."""
    try:
        from newsletter.render.contribution import summarize
    except ImportError:  # a tree whose web page shows abstracts only
        return {}
    return {norm(p.title): norm(summarize(p, config.summary_chars)) for p in issue.papers}


def deliver_one(issue: Any, config: Any, folder: Path) -> None:
    """Deliver the issue to one subscriber, into the outbox folder `folder / "outbox"`."""
    from newsletter.audience.tokens import SecretKeys
    from newsletter.delivery import OutboxTransport
    from newsletter.job import send_rendered
    from newsletter.models import Subscriber
    from newsletter.store import Store

    with Store.open(folder / "state.db") as store:
        send_rendered(
            issue,
            config,
            [Subscriber("ann.lee@example.com", "Ann Lee")],
            store,
            OutboxTransport(folder / "outbox"),
            keys=SecretKeys(["bench-key-0123456789abcdef"]),
        )


def spam_score(issue: Any, config: Any, folder: Path) -> tuple[float, list[str]]:
    deliver_one(issue, config, folder)
    box = mailbox.Maildir(folder / "outbox", create=False)
    (message,) = [box.get_bytes(k) for k in box.iterkeys()]
    result = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=message,
        capture_output=True,
        timeout=180,
        env={**os.environ, "HOME": str(folder)},
        check=True,
    )
    head = result.stdout.split(b"\n\n", 1)[0].decode("utf-8", "replace")
    head = re.sub(r"\n[ \t]+", "", head)
    found = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=(\S*)", head, re.M)
    assert found, head
    rules = [r for r in found.group(2).split(",") if r and r != "none"]
    return float(found.group(1)), rules


def browser_numbers(html_path: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            for width in (320, 375, 800):
                context = browser.new_context(viewport={"width": width, "height": 800})
                context.route(
                    "**/*",
                    lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort(),
                )
                page = context.new_page()
                page.goto(html_path.as_uri())
                out[str(width)] = page.evaluate(PAGE_PROBE, width)
                context.close()
        finally:
            browser.close()
    return out


def measure() -> dict[str, Any]:
    """Measure the `newsletter` package found first on sys.path (the tree under test)."""
    from newsletter import resources
    from newsletter.config import parse_config
    from newsletter.sources import read_source

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = parse_config(resources.default_config_text() + EXTRA_CONFIG, "config.yaml", folder)
        issue, rendered = build_and_render(read_source("sample", now=NOW), config)
        summaries = email_papers(rendered.html)
        having, showing = contribution_stats(list(issue.papers), summaries)
        web = web_summaries(issue, config)
        web_having, web_showing = contribution_stats(list(issue.papers), web) if web else (0, 0)
        cut = [t for t, s in summaries.items() if s and (s.endswith("…") or not CLOSED.search(s))]
        more = more_counts(rendered.html)
        html_path = folder / "email.html"
        html_path.write_text(rendered.html, encoding="utf-8")
        shown = browser_numbers(html_path)
        score, rules = spam_score(issue, config, folder)
    return {
        "papers": issue.paper_count,
        "in_email": len(summaries),
        "behind_more": more,
        "missing": issue.paper_count - len(summaries) - more,
        "contribution": [having, showing],
        "contribution_web": [web_having, web_showing],
        "cut": len(cut),
        "html_kb": rendered.size_bytes / 1000,
        "browser": shown,
        "spam": [score, rules],
    }


def measure_tree(tree: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("NEWSLETTER_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"measuring {tree} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export(ref: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    having, showing = m["contribution"]
    web_having, web_showing = m["contribution_web"]
    b = m["browser"]
    pct = f"{100 * showing / having:.0f}%" if having else "-"
    web_pct = f"{100 * web_showing / web_having:.0f}%" if web_having else "-"
    return [
        ("papers in the issue", f"{m['papers']}"),
        ("papers in the email", f"{m['in_email']}"),
        ("papers behind '+N more' links", f"{m['behind_more']}"),
        ("papers in neither", f"{m['missing']}"),
        ("contribution shown (email)", f"{showing}/{having} ({pct})"),
        ("contribution shown (web page)", f"{web_showing}/{web_having} ({web_pct})"),
        ("summaries cut mid-sentence", f"{m['cut']}"),
        ("HTML size", f"{m['html_kb']:.1f} KB"),
        ("height at 375 px", f"{b['375']['height']:,} px"),
        ("content width at 320/375/800 px", "/".join(str(b[w]["width"]) for w in b)),
        ("smallest visible text", f"{min(b[w]['smallest'] for w in b):g} px"),
        ("SpamAssassin (-L -t)", f"{m['spam'][0]:.1f} {','.join(m['spam'][1]) or '-'}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", metavar="REF", help="also measure this git ref (like main)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure()))
        return
    columns = {"working tree": measure_tree(ROOT)}
    if args.compare:
        with tempfile.TemporaryDirectory() as tmp:
            columns = {args.compare: measure_tree(export(args.compare, Path(tmp))), **columns}
    labels = [label for label, _ in rows(next(iter(columns.values())))]
    table = {name: dict(rows(m)) for name, m in columns.items()}
    width = max(len(s) for s in labels)
    print(f"{'':{width}}  " + "  ".join(f"{name:>24}" for name in table))
    for label in labels:
        print(f"{label:{width}}  " + "  ".join(f"{table[n][label]:>24}" for n in table))
    print(f"bench/digest: {len(columns)} tree(s) measured, {len(labels)} numbers each")


if __name__ == "__main__":
    main()
