from __future__ import annotations

import dataclasses
import difflib
import json
import os
import random
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lxml.html
import pytest

from newsletter import resources
from newsletter.config import Config, parse_config
from newsletter.errors import RenderError
from newsletter.models import OTHER, Issue, Paper, RenderedEmail
from newsletter.render.blurbs import author_line
from newsletter.render.context import date_range
from newsletter.render.renderer import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    check_templates,
    render_issue,
)
from newsletter.render.validate import find_validator
from newsletter.sources import read_source
from newsletter.topics.issue import assemble_issue, build_issue
from tests.support.paths import GOLDEN as GOLDEN_ROOT
from tests.support.paths import REPO

GOLDEN = GOLDEN_ROOT / "sample"
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
EVIL = "<script>alert(1)</script> & a<b"
KB100 = 100_000
# A line may run past 78 columns only for a URL (alone, or after its label: "PDF: https://...").
URL_LINE = re.compile(r"^\s*(?:[A-Z][\w ]*: )?(?:https?://|%%)\S+$")
CLOSED = re.compile(r"[.!?][\"')\]]*$")


def default_config(extra: str = "", base_dir: Path | None = None) -> Config:
    return parse_config(resources.default_config_text() + extra, "config.yaml", base_dir)


def sample_issue(config: Config) -> Issue:
    papers = read_source("sample", now=NOW)
    return build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )


@pytest.fixture(scope="module")
def sample() -> tuple[Issue, RenderedEmail]:
    config = default_config()
    issue = sample_issue(config)
    return issue, render_issue(issue, config.render_settings())


def html_papers(html: str) -> list[dict[str, str]]:
    """Every paper block of the email as a reader sees it: title, link, summary."""
    doc = lxml.html.fromstring(html)
    out = []
    for block in doc.find_class("paper"):
        title = block.find_class("title")[0]
        summary = block.find_class("summary")
        out.append(
            {
                "title": title.text_content(),
                "href": title.get("href"),
                "summary": summary[0].text_content() if summary else "",
                "style": block.get("style", ""),
            }
        )
    return out


def visible_text(html: str) -> str:
    return " ".join(lxml.html.fromstring(html).text_content().split())


def paper(n: int, title: str = "", **kw: object) -> Paper:
    return Paper(id=f"2611.{n:05d}", title=title or f"Paper number {n}", **kw)  # type: ignore[arg-type]


def issue_of(groups: dict[str, list[Paper]], config: Config) -> Issue:
    return assemble_issue(
        groups, config.issue_settings(), issue_id="2026-W48", start=NOW - timedelta(7), end=NOW
    )


# -- golden files ----------------------------------------------------------------------------------


def _lines(text: str, html: bool) -> list[str]:
    # The compiled HTML is a few very long lines; one tag per line makes a readable diff.
    return (text.replace("><", ">\n<") if html else text).splitlines()


@pytest.mark.parametrize("name", ["email.html", "email.txt"])
def test_sample_issue_matches_the_golden_files(name: str, update_golden: bool) -> None:
    config = parse_config(
        (GOLDEN / "config.yaml").read_text(encoding="utf-8"), "golden config.yaml", GOLDEN
    )
    rendered = render_issue(sample_issue(config), config.render_settings())
    actual = rendered.html if name == "email.html" else rendered.text
    path = GOLDEN / name
    if update_golden:
        path.write_text(actual, encoding="utf-8", newline="")
    expected = path.read_bytes().decode("utf-8")
    if actual != expected:
        html = name.endswith(".html")
        diff = difflib.unified_diff(
            _lines(expected, html), _lines(actual, html), str(path), "rendered now", lineterm=""
        )
        shown = "\n".join(list(diff)[:80])
        pytest.fail(
            f"{name} differs from {path} (run pytest --update-golden if intended):\n{shown}"
        )


# -- content and size --------------------------------------------------------------------------


def more_links(html: str) -> dict[str, tuple[int, str]]:
    """Topic -> (N, link) of every "+N more in <topic> →" line."""
    doc = lxml.html.fromstring(html)
    out = {}
    for el in doc.find_class("more"):
        found = re.fullmatch(r"\+(\d+) more in (.+)\u00a0→", el.text_content())
        assert found, el.text_content()
        out[found[2]] = (int(found[1]), el.find("a").get("href"))
    return out


def test_sample_is_short_and_every_paper_is_in_it_or_one_click_away(sample) -> None:
    issue, rendered = sample
    assert issue.paper_count == 83
    assert rendered.size_bytes == len(rendered.html.encode("utf-8")) <= KB100
    shown = html_papers(rendered.html)
    mores = more_links(rendered.html)
    # Four papers a topic at most, the rest behind "+N more" links to the topic on the web page.
    assert len(shown) == rendered.papers_shown < 83
    assert len(shown) + sum(n for n, _ in mores.values()) == 83
    for section in issue.sections:
        if section.total > 4:
            assert mores[section.topic] == (
                section.total - 4,
                f"{issue.web_url}#{re.sub('[^a-z0-9]+', '-', section.topic.lower()).strip('-')}",
            )
    text = visible_text(rendered.html)
    assert f"The best {len(shown)} of this week's 83 papers" in text
    assert "Top of the week" in text
    by_title = {p.title: p for p in issue.papers}
    for entry in shown:
        assert entry["href"].startswith("https://"), entry
        # whole sentences of the abstract, never cut
        assert entry["summary"] and CLOSED.search(entry["summary"]), entry
        assert "…" not in entry["summary"]
        abstract = " ".join(by_title[entry["title"]].abstract.split())
        assert entry["summary"].split(". ")[0] in abstract


def test_email_shows_authors_votes_summary_and_links() -> None:
    config = default_config()
    full = paper(
        1,
        "A paper with everything",
        authors=("Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra"),
        abstract="First sentence of the abstract. " * 30,
        summary="The source's own one-line summary.",
        url="https://arxiv.org/abs/2611.00001",
        pdf_url="https://arxiv.org/pdf/2611.00001",
        code_url="https://github.com/example/repo",
        upvotes=42,
    )
    rendered = render_issue(issue_of({"Topic": [full]}, config), config.render_settings())
    text = visible_text(rendered.html)
    assert "Ada Lovelace, Alan Turing, Grace Hopper et al. · 42 upvotes" in text
    assert "Edsger" not in text
    assert "The source's own one-line summary." in text and "First sentence" not in text
    doc = lxml.html.fromstring(rendered.html)
    links = {a.text_content(): a.get("href") for a in doc.find_class("links")[0].iter("a")}
    assert links == {
        "Abstract": "https://arxiv.org/abs/2611.00001",
        "PDF": "https://arxiv.org/pdf/2611.00001",
        "Code": "https://github.com/example/repo",
    }
    for label, url in links.items():
        assert f"\n     {label}: {url}\n" in rendered.text


def test_title_is_escaped_in_html_and_raw_in_text() -> None:
    config = default_config()
    evil = paper(1, EVIL, abstract="An abstract that says <b>hi</b> & more.", authors=("A<b>",))
    rendered = render_issue(issue_of({"Topic <i>": [evil]}, config), config.render_settings())
    assert "<script>" not in rendered.html and "<b>hi" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; a&lt;b" in rendered.html
    assert [p["title"] for p in html_papers(rendered.html)] == [EVIL]
    assert "<b>hi</b> & more." in visible_text(rendered.html)
    assert f"  1. {EVIL}\n" in rendered.text
    assert "TOPIC <I>" in rendered.text and "A<b>" in rendered.text
    assert "&lt;" not in rendered.text and "&amp;" not in rendered.text


def test_placeholders_survive_mjml_and_premailer(sample) -> None:
    _, rendered = sample
    doc = lxml.html.fromstring(rendered.html)
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert UNSUBSCRIBE_PLACEHOLDER in hrefs and PREFERENCES_PLACEHOLDER in hrefs
    text_lines = rendered.text.splitlines()
    assert f"Unsubscribe: {UNSUBSCRIBE_PLACEHOLDER}" in text_lines
    assert f"Preferences: {PREFERENCES_PLACEHOLDER}" in text_lines


def test_footer_says_why_and_links_the_web_version_and_organisation(sample) -> None:
    issue, rendered = sample
    text = visible_text(rendered.html)
    assert "You get this email because you subscribed to Papers of the week" in text
    assert "newsletter · a self-hosted paper digest" in text
    doc = lxml.html.fromstring(rendered.html)
    links = {a.text_content(): a.get("href") for a in doc.iter("a")}
    assert links["View in browser"] == "http://localhost:8000/issues/2026-W48" == issue.web_url


def test_subject_preheader_and_chips_name_the_topics() -> None:
    config = default_config("title: Weekly\n")
    groups = {
        "A": [paper(1)],
        "B": [paper(2), paper(3), paper(4)],
        "C": [paper(5), paper(6)],
        OTHER: [paper(7 + i) for i in range(5)],
    }
    rendered = render_issue(issue_of(groups, config), config.render_settings())
    assert rendered.subject == "Weekly: 11 papers, B, C and more"
    assert rendered.preheader == "11 papers this week: B (3), C (2), A (1) and more."
    assert rendered.preheader in visible_text(rendered.html)
    doc = lxml.html.fromstring(rendered.html)
    chips = {a.text_content(): a.get("href") for a in doc.find_class("chip")}
    web = "http://localhost:8000/issues/2026-W48"
    assert chips == {
        "A 1": f"{web}#a",
        "B 3": f"{web}#b",
        "C 2": f"{web}#c",
        "Other 5": f"{web}#other",
    }
    # No jump link within the email: Gmail on iOS breaks them.
    assert not [a for a in doc.iter("a") if (a.get("href") or "").startswith("#")]
    assert "<title>Weekly: 11 papers, B, C and more</title>" in rendered.html


def test_subject_follows_the_config_template() -> None:
    config = default_config('subject: "{issue_id}: {count} new ({topics})"\n')
    rendered = render_issue(
        issue_of({"A": [paper(1)], "B": [paper(2)]}, config), config.render_settings()
    )
    assert rendered.subject == "2026-W48: 2 new (A and B)"


def test_a_variant_holds_only_its_topics() -> None:
    config = default_config()
    groups = {"A": [paper(1, "Alpha paper")], "B": [paper(2, "Beta paper")]}
    rendered = render_issue(
        issue_of(groups, config), config.render_settings(), topics=frozenset({"B"})
    )
    assert [p["title"] for p in html_papers(rendered.html)] == ["Beta paper"]
    assert "Alpha paper" not in rendered.text and "Beta paper" in rendered.text
    assert rendered.topics == ("B",)
    assert rendered.subject == "Papers of the week: 1 paper, B"


# -- caps and the size budget ------------------------------------------------------------------


def test_capped_sections_say_how_many_more_and_link_the_web_version() -> None:
    config = default_config("max_per_topic: 2\nbase_url: https://news.example.org\n")
    groups = {"Reasoning": [paper(i, upvotes=i) for i in range(1, 15)], "Small": [paper(99)]}
    issue = issue_of(groups, config)
    rendered = render_issue(issue, config.render_settings())
    doc = lxml.html.fromstring(rendered.html)
    (more,) = doc.find_class("more")
    assert more.text_content() == "+12 more in Reasoning\u00a0→"
    web = "https://news.example.org/issues/2026-W48#reasoning"
    assert more.find("a").get("href") == web
    assert f"+12 more in Reasoning:\n{web}\n" in rendered.text
    assert rendered.web_only == 12
    assert "The best 3 of this week's 15 papers. The other 12 are one click away" in (
        visible_text(rendered.html)
    )


def synthetic(n: int, seed: int = 7) -> dict[str, list[Paper]]:
    """`n` papers with long abstracts, authors and links, spread over five topics and Other."""
    rng = random.Random(seed)
    words = [
        "model",
        "diffusion",
        "learning",
        "graph",
        "reasoning",
        "language",
        "agent",
        "training",
        "data",
        "robust",
        "neural",
        "efficient",
        "benchmark",
        "vision",
        "transformer",
        "policy",
        "sparse",
        "attention",
        "retrieval",
        "scaling",
    ]
    topics = ["Reasoning", "Diffusion", "Agents", "Vision", "Speech", OTHER]
    groups: dict[str, list[Paper]] = {t: [] for t in topics}
    for i in range(n):
        sentences = [
            " ".join(rng.choice(words) for _ in range(rng.randint(8, 20))).capitalize() + "."
            for _ in range(8)
        ]
        aid = f"2611.{i:05d}"
        groups[topics[i % len(topics)]].append(
            Paper(
                id=aid,
                title=" ".join(rng.choice(words) for _ in range(rng.randint(5, 14))).title(),
                authors=tuple(f"Author {i}-{j}" for j in range(rng.randint(1, 8))),
                abstract=" ".join(sentences),
                url=f"https://arxiv.org/abs/{aid}",
                pdf_url=f"https://arxiv.org/pdf/{aid}",
                code_url=f"https://github.com/lab/project-{i}" if i % 3 == 0 else None,
                published=NOW - timedelta(hours=rng.randint(1, 160)),
                upvotes=rng.randint(0, 300) if i % 4 else None,
            )
        )
    return groups


def test_a_thousand_papers_stay_within_the_budget_and_say_what_is_web_only() -> None:
    config = default_config("max_per_topic: null\ntop_papers: 0\n")
    issue = issue_of(synthetic(1000), config)
    rendered = render_issue(issue, config.render_settings())
    assert len(rendered.html.encode("utf-8")) <= KB100
    shown = html_papers(rendered.html)
    assert 0 < len(shown) < 1000
    assert rendered.web_only == 1000 - len(shown) == issue.paper_count - rendered.papers_shown
    doc = lxml.html.fromstring(rendered.html)
    mores = [
        int(re.match(r"\+(\d+) more in ", m.text_content())[1]) for m in doc.find_class("more")
    ]
    assert sum(mores) == rendered.web_only
    text = visible_text(rendered.html)
    assert f"The other {rendered.web_only:,} are one click away" in text
    # Summaries shortened (to fewer whole sentences) before sections were capped.
    assert all(CLOSED.search(p["summary"]) for p in shown)
    assert all(len(p["summary"]) <= 225 for p in shown)
    # Each topic keeps a fair share: no section is squeezed out by the others.
    per_section = [len(h2.getparent().find_class("paper")) for h2 in doc.find_class("topic")]
    assert len(per_section) == 6 and max(per_section) - min(per_section) <= 1


def test_summaries_shorten_before_any_paper_is_dropped() -> None:
    groups = synthetic(60, seed=3)
    every = "max_per_topic: null\ntop_papers: 0\n"
    long_config = default_config(every + "summary_chars: 900\n")
    short_config = default_config(every + "summary_chars: 225\n")
    long_size = render_issue(issue_of(groups, long_config), long_config.render_settings())
    short_size = render_issue(issue_of(groups, short_config), short_config.render_settings())
    long_size, short_size = long_size.size_bytes, short_size.size_bytes
    budget_kb = (long_size + short_size) // 2000 + 1  # between the two, with room to spare
    assert short_size + 2000 < budget_kb * 1000 < long_size
    config = default_config(every + f"summary_chars: 900\nsize_budget_kb: {budget_kb}\n")
    rendered = render_issue(issue_of(groups, config), config.render_settings())
    assert rendered.size_bytes <= budget_kb * 1000
    assert rendered.web_only == 0 and len(html_papers(rendered.html)) == 60
    longest = max(len(p["summary"]) for p in html_papers(rendered.html))
    assert 225 < longest < 900


# -- the email as a client sees it -------------------------------------------------------------


def test_html_keeps_media_queries_outlook_comments_and_dark_mode(sample) -> None:
    _, rendered = sample
    html = rendered.html
    assert html.startswith("<!doctype html>")
    assert "@media only screen and (min-width:480px)" in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "!important" in html  # the responsive column rules need it
    assert "<!--[if mso | IE]>" in html and "<![endif]-->" in html
    doc = lxml.html.fromstring(html)
    metas = {m.get("name"): m.get("content") for m in doc.iter("meta") if m.get("name")}
    assert metas["color-scheme"] == "light dark"
    assert metas["supported-color-schemes"] == "light dark"


def test_html_is_one_column_600px_accessible_and_self_contained(sample) -> None:
    _, rendered = sample
    html = rendered.html
    doc = lxml.html.fromstring(html)
    assert doc.get("lang") == "en"
    tables = list(doc.iter("table"))
    assert tables and all(t.get("role") == "presentation" for t in tables)
    assert all(img.get("alt") is not None for img in doc.iter("img"))
    assert "max-width:600px" in html
    widths = [int(w) for w in re.findall(r'width="(\d+)"', html)]
    widths += [int(w) for w in re.findall(r"width:(\d+)px", html)]
    assert widths and max(widths) == 600
    # Nothing is fetched when the email opens: no images, fonts or stylesheets from the web.
    assert "<link" not in html and "@import" not in html and "src=" not in html
    # Long words and URLs wrap instead of widening a phone screen.
    assert all("overflow-wrap:anywhere" in p["style"] for p in html_papers(html))


def test_lang_comes_from_the_config() -> None:
    config = default_config("lang: de\n")
    rendered = render_issue(issue_of({"A": [paper(1)]}, config), config.render_settings())
    assert lxml.html.fromstring(rendered.html).get("lang") == "de"


def test_text_twin_wraps_at_78_columns_with_labelled_links_and_a_signature(sample) -> None:
    issue, rendered = sample
    lines = rendered.text.splitlines()
    too_long = [ln for ln in lines if len(ln) > 78 and not URL_LINE.match(ln)]
    assert too_long == []
    assert lines[0] == "Papers of the week · 28 Apr 2026"
    stripped = [ln.strip() for ln in lines]
    for section in issue.sections:
        assert f"{section.topic.upper()} ({section.total})" in stripped
    for entry in html_papers(rendered.html):
        # the whole URL after its label, never bare
        assert f"Search arXiv: {entry['href']}" in stripped
        assert entry["href"] not in stripped
    assert f"View in browser: {issue.web_url}" in stripped
    assert lines.count("-- ") == 1  # the signature line keeps its space


def test_text_twin_has_the_html_order_and_caps(sample) -> None:
    _, rendered = sample
    html_titles = [p["title"] for p in html_papers(rendered.html)]
    numbered = re.findall(r"^ *(\d+)\. (.+(?:\n {5}(?!\[)\S.*)*)", rendered.text, re.M)
    # each numbered title (wrapped lines joined) in the same order as the HTML's cards
    titles = [" ".join(t.split()) for _, t in numbered]
    assert [t[: len(h)] for t, h in zip(titles, html_titles, strict=True)] == html_titles
    assert [int(n) for n, _ in numbered] == list(range(1, len(html_titles) + 1))
    assert "TOP OF THE WEEK" in rendered.text
    text_more = re.findall(r"^\+(\d+) more in (.+):$", rendered.text, re.M)
    assert {t: int(n) for n, t in text_more} == {
        t: n for t, (n, _) in more_links(rendered.html).items()
    }


def test_rendering_twice_gives_identical_output(sample) -> None:
    issue, first = sample
    config = default_config()
    again = render_issue(issue, config.render_settings())
    assert (again.html, again.text, again.subject) == (first.html, first.text, first.subject)


def test_a_fresh_process_renders_quietly_identically_and_loads_premailer_lazily() -> None:
    script = (
        "import sys, json, hashlib\n"
        "import newsletter.render.renderer as r\n"
        "heavy = sorted(m for m in ('premailer', 'lxml', 'cssutils') if m in sys.modules)\n"
        "from datetime import datetime, timezone\n"
        "from newsletter.config import load_config\n"
        "from newsletter.topics.issue import build_issue\n"
        "from newsletter.sources import read_source\n"
        "now = datetime(2026, 11, 26, 8, tzinfo=timezone.utc)\n"
        "c = load_config(None)\n"
        "i = build_issue(read_source('sample', now=now), c.issue_settings(), now=now,\n"
        "                use_window=False)\n"
        "e = r.render_issue(i, c.render_settings())\n"
        "print(json.dumps([heavy, hashlib.sha256((e.html + e.text).encode()).hexdigest()]))\n"
    )
    digests = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": seed}
        env.pop("NEWSLETTER_CONFIG", None)
        proc = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=REPO,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # no CSS parser chatter on the terminal
        heavy, digest = json.loads(proc.stdout)
        assert heavy == []
        digests.append(digest)
    assert digests[0] == digests[1]


# -- templates -----------------------------------------------------------------------------------


def test_a_user_template_replaces_one_partial(tmp_path: Path) -> None:
    folder = tmp_path / "my-templates"
    folder.mkdir()
    (folder / "footer.mjml").write_text(
        "<mj-section><mj-column><mj-text>Sent with care by {{ organisation }}."
        '<a href="{{ unsubscribe_url }}">Leave</a></mj-text></mj-column></mj-section>\n'
    )
    config = default_config("templates_dir: my-templates\norganisation: ACME & Co\n", tmp_path)
    rendered = render_issue(
        issue_of({"A": [paper(1, "Kept title")]}, config), config.render_settings()
    )
    text = visible_text(rendered.html)
    assert "Sent with care by ACME & Co." in text
    assert "You get this email because" not in text  # the bundled footer is replaced
    assert [p["title"] for p in html_papers(rendered.html)] == ["Kept title"]  # others stay
    assert "You get this email because" in rendered.text  # the text twin is still bundled


def test_check_templates_passes_the_bundled_templates() -> None:
    assert check_templates(default_config().render_settings()) == []


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("paper.mjml", "{% if paper.title %}no end\n", r"paper\.mjml:1: .*endif"),
        ("paper.mjml", "<div>{{ paper.titel }}</div>\n", r"paper\.mjml:1: .*titel"),
        ("section.mjml", "<mj-text><div>unclosed\n", r"email\.mjml: MJML .*section\.mjml"),
        ("email.txt", "{{ title | nosuchfilter }}\n", r"email\.txt:1: .*nosuchfilter"),
        ("extra.mjml", "<mj-text/>\n", r"extra\.mjml: replaces no template"),
    ],
)
def test_check_templates_names_the_broken_file(tmp_path: Path, name, content, expected) -> None:
    (tmp_path / name).write_text(content)
    problems = check_templates(default_config("templates_dir: .\n", tmp_path).render_settings())
    assert len(problems) == 1, problems
    assert re.search(expected, problems[0]), problems[0]


def test_check_templates_runs_the_reference_validator_on_the_rendered_mjml(tmp_path: Path) -> None:
    assert find_validator() is not None, "the reference MJML validator is missing: run `npm ci`"
    # mjml-python compiles an unknown tag silently; the reference validator does not.
    (tmp_path / "section.mjml").write_text("<mj-foo>{{ section.topic }}</mj-foo>\n")
    problems = check_templates(default_config("templates_dir: .\n", tmp_path).render_settings())
    assert problems and all("mj-foo" in p and "section.mjml" in p for p in problems), problems


# -- text helpers ----------------------------------------------------------------------------------


def test_author_line_ends_in_et_al_after_three() -> None:
    assert author_line(["A", "B", "C"]) == "A, B, C"
    assert author_line(["A", "B", "C", "D"]) == "A, B, C et al."
    assert author_line([]) == ""


@pytest.mark.parametrize(
    ("start", "end", "tz", "expected"),
    [
        ((2026, 11, 19, 8), (2026, 11, 26, 8), "UTC", "19–26 Nov 2026"),
        ((2026, 10, 28, 8), (2026, 11, 4, 8), "UTC", "28 Oct – 4 Nov 2026"),
        ((2026, 12, 28, 8), (2027, 1, 4, 8), "UTC", "28 Dec 2026 – 4 Jan 2027"),
        ((2026, 4, 28, 0), (2026, 4, 28, 0), "UTC", "28 Apr 2026"),
        ((2026, 11, 19, 23), (2026, 11, 26, 23), "Asia/Tokyo", "20–27 Nov 2026"),
    ],
)
def test_date_range_reads_naturally_in_the_configured_timezone(start, end, tz, expected) -> None:
    a = datetime(*start, tzinfo=timezone.utc)
    b = datetime(*end, tzinfo=timezone.utc)
    assert date_range(a, b, tz) == expected


def test_brand_colour_logo_and_postal_line_reach_the_email() -> None:
    config = default_config(
        'brand: {accent: "#7a1f5c", logo_url: "https://example.org/logo.png"}\n'
        'postal_address: "ACME Papers, 1 Main Street, 12345 Town"\n'
    )
    rendered = render_issue(issue_of({"A": [paper(1)]}, config), config.render_settings())
    doc = lxml.html.fromstring(rendered.html)
    (logo,) = doc.iter("img")
    assert logo.get("src") == "https://example.org/logo.png" and logo.get("alt")
    assert "background:#7a1f5c" in rendered.html.replace(" ", "")  # the header band
    assert "color:#7a1f5c" in doc.find_class("title")[0].get("style", "").replace(" ", "")
    assert "ACME Papers, 1 Main Street, 12345 Town" in visible_text(rendered.html)
    assert rendered.text.rstrip().endswith("ACME Papers, 1 Main Street, 12345 Town")


def test_preheader_is_hidden_without_white_text_and_followed_by_a_spacer(sample) -> None:
    _, rendered = sample
    doc = lxml.html.fromstring(rendered.html)
    hidden = next(el for el in doc.body.iter("div") if "display:none" in el.get("style", ""))
    assert hidden.text_content().startswith(rendered.preheader)
    style = hidden.get("style").replace(" ", "")
    assert "display:none" in style and "color" not in style and "font-size:1px" not in style
    # the spacer: invisible characters that keep the body out of the inbox preview line
    assert hidden.text_content()[len(rendered.preheader) :].strip("\u034f\u200c\u00a0 ") == ""
    assert len(hidden.text_content()) > len(rendered.preheader) + 100


def test_a_paper_that_cannot_be_rendered_is_named_with_its_field() -> None:
    # papers from the sources are cleaned when they are made; one archived by an older version
    # (or built by hand) may still hold a character the email cannot carry
    config = default_config()
    issue = sample_issue(config)
    # the last paper the email shows of the first section with three
    at = next(i for i, s in enumerate(issue.sections) if len(s.papers) >= 3)
    section = issue.sections[at]
    bad = dataclasses.replace(section.papers[2], abstract="Fine words, then a\x08 backspace.")
    sections = list(issue.sections)
    sections[at] = dataclasses.replace(
        section, papers=(*section.papers[:2], bad, *section.papers[3:])
    )
    broken = dataclasses.replace(issue, sections=tuple(sections))
    with pytest.raises(RenderError) as info:
        render_issue(broken, config.render_settings())
    message = str(info.value)
    assert f"paper {bad.id}" in message and "abstract" in message, message
    assert "fix the template" not in message


def test_every_variant_shows_the_same_date_range() -> None:
    # a reader of one topic sees the issue's dates, not only those of the papers they chose
    config = default_config()
    early = paper(1, "Early paper", published=datetime(2026, 11, 20, tzinfo=timezone.utc))
    late = paper(2, "Late paper", published=datetime(2026, 11, 25, tzinfo=timezone.utc))
    issue = issue_of({"A": [early], "B": [late]}, config)
    whole = visible_text(render_issue(issue, config.render_settings()).html)
    only_a = visible_text(
        render_issue(issue, config.render_settings(), topics=frozenset({"A"})).html
    )
    assert "20–25 Nov 2026" in whole and "20–25 Nov 2026" in only_a
