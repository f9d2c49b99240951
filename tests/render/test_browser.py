"""The email and its preview page in a real headless Chromium (Debian's `chromium` package).

Screenshots land in tests/artifacts/ (gitignored) for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from newsletter import resources
from newsletter.config import parse_config
from newsletter.models import Issue, Paper, RenderedEmail
from newsletter.preview import files as preview
from newsletter.preview.server import PreviewServer
from newsletter.render.renderer import render_issue
from newsletter.sources import read_source
from newsletter.topics.issue import build_issue
from tests.support.chromium import ARTIFACTS, chromium
from tests.support.paths import SAMPLES

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)


@dataclass
class Sample:
    issue: Issue
    rendered: RenderedEmail
    out: Path


def _write(tmp: Path, name: str, papers: list[Paper]) -> Sample:
    config = parse_config(resources.default_config_text(), "config.yaml", tmp)
    issue = build_issue(papers, config.issue_settings(), now=NOW, use_window=False)
    rendered = render_issue(issue, config.render_settings())
    preview.write_files(config, issue, rendered, tmp / name, now=NOW)
    return Sample(issue, rendered, tmp / name)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """The bundled Daily Papers page: 83 papers with title and abstract only."""
    return _write(tmp_path_factory.mktemp("browser"), "sample", read_source("sample"))


# Everything a paper can carry, at its longest: the layout must hold on a phone.
AWKWARD = Paper(
    id="2611.99999",
    title="Pneumonoultramicroscopicsilicovolcanoconiosis-Aware Supercalifragilistic"
    "expialidociousTransformers: Scaling Laws Beyond 10,000,000,000,000 Tokens",
    authors=tuple(f"Author Number{i} Withaverylongfamilyname" for i in range(40)),
    abstract="A" * 40 + " " + "https://example.org/" + "very-long-path/" * 20 + " " + "x " * 200,
    url="https://arxiv.org/abs/2611.99999",
    pdf_url="https://arxiv.org/pdf/2611.99999",
    code_url="https://github.com/an-organisation-with-a-long-name/" + "repository-name-" * 6,
    project_url="https://project.example.org/" + "page/" * 30,
    upvotes=12345,
    summary="S" * 120 + " and a summary that runs on " * 10,
    categories=("cs.LG",),
)


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """The recorded HF API answer (authors, upvotes, links, summaries) plus one awkward paper."""
    recorded = read_source(str(SAMPLES / "hf-daily-papers-api.json"))
    return _write(tmp_path_factory.mktemp("browser"), "rich", [*recorded, AWKWARD])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def offline_page(browser: Any, width: int, **options: Any) -> Any:
    """A page whose requests may reach only local files and 127.0.0.1 (no test touches the net)."""
    context = browser.new_context(viewport={"width": width, "height": 900}, **options)

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(("file:", "data:", "http://127.0.0.1")):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    return context.new_page()


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


# For each title: the first element whose whole text is that title (whitespace collapsed, as a
# reader sees it), visible (not display:none, visibility:hidden or transparent), with a box that
# has area and lies within the viewport's width. One round trip for all titles.
FIND_TITLES = """({titles, width}) => {
  const norm = (s) => s.replace(/\\s+/g, " ").trim();
  const first = new Map();
  for (const el of document.body.querySelectorAll("*")) {
    const text = norm(el.textContent);
    if (!first.has(text)) first.set(text, el);
  }
  const problems = [];
  for (const title of titles) {
    const el = first.get(norm(title));
    if (!el) { problems.push("missing: " + title); continue; }
    const box = el.getBoundingClientRect();
    if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
        || box.width < 1 || box.height < 1) {
      problems.push("hidden: " + title);
    } else if (box.left < 0 || box.right > width + 0.5) {
      problems.push(`cut off at ${Math.round(box.left)}..${Math.round(box.right)} px: ${title}`);
    }
  }
  return problems;
}"""


def expected_titles(sample: Sample) -> list[str]:
    # These issues fit the budget, so the email shows every paper of its sections.
    assert sample.rendered.papers_shown == sample.issue.email_count, "now trimmed to fit"
    return [p.title for s in sample.issue.sections for p in s.papers]


@pytest.mark.parametrize(
    ("case", "width", "scheme"),
    [
        ("sample", 320, "light"),
        ("sample", 375, "light"),
        ("sample", 800, "light"),
        ("sample", 375, "dark"),
        ("rich", 375, "light"),
        ("rich", 800, "dark"),
    ],
    ids=str,
)
def test_email_fits_the_width_and_shows_every_title(
    browser: Any, request: pytest.FixtureRequest, case: str, width: int, scheme: str
) -> None:
    sample: Sample = request.getfixturevalue(case)
    page = offline_page(browser, width, color_scheme=scheme)
    page.goto((sample.out / "email.html").as_uri())
    shot(page, f"email-{case}-{width}-{scheme}.png")

    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width, f"horizontal scroll at {width} px: content is {overflow} px wide"
    titles = expected_titles(sample)
    # four a topic at most, the rest behind "+N more" links (how many topics have fewer than four
    # papers depends on the grouping: the keyword weights' background regrouped both issues)
    assert len(titles) == {"sample": 40, "rich": 29}[case]
    problems = page.evaluate(FIND_TITLES, {"titles": titles, "width": width})
    assert not problems, "\n".join(problems)


# Every visible piece of text: its font size, and the height and width of the whole page.
PAGE_PROBE = """() => {
  const sizes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const el = node.parentElement;
    if (!node.textContent.trim() || !el) continue;
    if (!el.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const box = range.getBoundingClientRect();
    if (box.width < 1 || box.height < 1) continue;
    sizes.push([parseFloat(getComputedStyle(el).fontSize), node.textContent.trim()]);
  }
  return {sizes, height: document.documentElement.scrollHeight};
}"""


@pytest.mark.parametrize("width", [320, 375, 800])
def test_sample_email_is_short_on_a_phone_with_no_text_under_12_px(
    browser: Any, sample: Sample, width: int
) -> None:
    page = offline_page(browser, width)
    page.goto((sample.out / "email.html").as_uri())
    found = page.evaluate(PAGE_PROBE)
    small = [(size, text[:40]) for size, text in found["sizes"] if size < 12]
    assert not small, small
    if width == 375:
        # 15 phone screens at most (it was 33, every paper at full weight)
        assert found["height"] <= 13_500, f"{found['height']} px tall at 375 px"
    # What the email leaves out is counted in its "+N more" links, paper for paper.
    mores = page.locator(".more").all_inner_texts()
    behind = sum(int(t.split()[0].lstrip("+")) for t in mores)
    assert len(expected_titles(sample)) + behind == sample.issue.paper_count == 83


def test_email_is_readable_on_a_phone(browser: Any, sample: Sample) -> None:
    """Body text at least 14 px and paper titles as tall as a finger needs to hit them."""
    page = offline_page(browser, 375)
    page.goto((sample.out / "email.html").as_uri())
    first = expected_titles(sample)[0]
    title = page.get_by_text(first, exact=True).first
    size = float(title.evaluate("e => getComputedStyle(e).fontSize").removesuffix("px"))
    assert size >= 14, f"title font {size} px on a phone"
    box = title.bounding_box()
    assert box is not None and box["height"] >= 18, f"title link only {box} tall"


def test_preview_page_shows_both_widths_and_the_text_tab_under_a_no_script_csp(
    browser: Any, sample: Sample, tmp_path: Path
) -> None:
    config = parse_config(resources.default_config_text(), "config.yaml", tmp_path)
    server = PreviewServer(config, ["sample"], tmp_path / "preview")
    server.build()
    url = server.start("127.0.0.1", 0)
    try:
        # The server's policy forbids every script, so what shows here shows without one.
        page = offline_page(browser, 1400)
        messages: list[str] = []
        page.on("console", lambda m: messages.append(m.text))
        response = page.goto(url + "index.html")
        assert response is not None and response.ok
        assert "script-src 'none'" in response.headers["content-security-policy"]
        frames = page.locator("iframe")
        assert frames.count() == 2
        widths = [frames.nth(i).evaluate("e => e.clientWidth") for i in range(2)]
        assert widths == [800, 375]
        first = expected_titles(sample)[0]
        for i in range(2):
            inner = page.frame_locator("iframe").nth(i).get_by_text(first, exact=True)
            inner.first.wait_for(state="visible", timeout=10_000)
        # The text tab is a <details>: no script. Scroll to it first as a reader would (a
        # click right after Chromium's own scroll-into-view can miss past the sandboxed frames).
        tab = page.locator("details#text summary")
        tab.scroll_into_view_if_needed()
        page.wait_for_timeout(200)
        tab.click()
        shown = " ".join(page.locator("details#text pre").inner_text().split())  # unwrapped
        assert first in shown
        assert page.locator("details#text pre").is_visible()
        shot(page, "preview-index.png")
        assert not [m for m in messages if "Content Security Policy" in m], messages
    finally:
        server.close()
