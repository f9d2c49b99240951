"""Take the README's screenshots of the sample email: 375 and 1024 px wide, light and dark.

Run by hand from the checkout: `python3 scripts/email_screenshots.py [--out docs]`. Renders the
bundled 83-paper sample with the default config (links filled for the preview's example
subscriber), opens it in headless Chromium (Debian's `chromium`, through Playwright) and writes
docs/email-<width>-<scheme>.png: the top of the email, as much as fits in `--height` pixels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from newsletter import resources  # noqa: E402
from newsletter.config import parse_config  # noqa: E402
from newsletter.preview.links import example_links, fill  # noqa: E402
from newsletter.render.renderer import render_issue  # noqa: E402
from newsletter.sources import read_source  # noqa: E402
from newsletter.topics.issue import build_issue  # noqa: E402

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--height", type=int, default=2200, help="pixels from the top")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    config = parse_config(resources.default_config_text(), "config.yaml", ROOT)
    papers = read_source("sample", now=NOW)
    issue = build_issue(papers, config.issue_settings(), now=NOW, use_window=False)
    html = fill(
        render_issue(issue, config.render_settings()).html, example_links(config), as_html=True
    )
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        page_file = Path(tmp) / "email.html"
        page_file.write_text(html, encoding="utf-8")
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            for width in (375, 1024):
                for scheme in ("light", "dark"):
                    context = browser.new_context(
                        viewport={"width": width, "height": 900}, color_scheme=scheme
                    )
                    context.route(
                        "**/*",
                        lambda r: r.continue_() if r.request.url.startswith("file:") else r.abort(),
                    )
                    page = context.new_page()
                    page.goto(page_file.as_uri())
                    full = page.evaluate("document.documentElement.scrollHeight")
                    target = args.out / f"email-{width}-{scheme}.png"
                    page.screenshot(
                        path=str(target),
                        clip={"x": 0, "y": 0, "width": width, "height": min(full, args.height)},
                        full_page=True,
                    )
                    written.append(target)
                    context.close()
        finally:
            browser.close()
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    print(f"screenshots: {len(written)} written")


if __name__ == "__main__":
    main()
