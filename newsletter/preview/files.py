"""`newsletter preview`: the current issue as files to look at before anyone receives it.

`write_preview` renders the issue exactly as `run` would (same sources, same build, same render)
and writes `email.html` and `email.txt` (the two MIME parts as an example subscriber gets them,
see `newsletter.preview.links`) and `index.html`, a static page that shows the email at desktop
and phone widths side by side with its size against the budget. `preview.server` serves that
folder and rebuilds on changes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from newsletter import resources
from newsletter.errors import PreviewError, RenderError
from newsletter.job import gather_papers, plan_issue
from newsletter.preview.links import example_links, fill
from newsletter.render import render_issue
from newsletter.store import Store

if TYPE_CHECKING:
    from newsletter.config import Config
    from newsletter.models import Issue, Paper, RenderedEmail

log = logging.getLogger(__name__)

PREVIEW_TEMPLATE = "preview/index.html"
DESKTOP_WIDTH = 800  # a desktop mail client's reading pane: wider than the 600 px email body
PHONE_WIDTH = 375  # the CSS width of the most common phones


@dataclass(frozen=True, slots=True)
class SectionCount:
    topic: str
    papers: int  # in the issue, email and web together


@dataclass(frozen=True, slots=True)
class PreviewResult:
    """What a preview build wrote, and the numbers its page shows."""

    out_dir: Path
    issue_id: str
    subject: str
    paper_count: int
    email_count: int
    web_only_count: int
    sections: tuple[SectionCount, ...]
    html_bytes: int
    text_bytes: int
    budget_kb: int
    example_subscriber: str = ""  # whose links the preview shows (tokens that no server accepts)

    @property
    def html_kb(self) -> float:
        # kB of 1,000 bytes, as `run` prints them; the budget leaves room below Gmail's clip.
        return self.html_bytes / 1000

    @property
    def over_budget(self) -> bool:
        return self.html_bytes > self.budget_kb * 1000

    @property
    def index_path(self) -> Path:
        return self.out_dir / "index.html"


def write_preview(
    config: Config,
    papers: list[Paper] | None,
    out_dir: Path,
    *,
    now: datetime | None = None,
    issue_id: str | None = None,
) -> PreviewResult:
    """Render the current issue into `out_dir`: email.html, email.txt and index.html."""
    use_window = papers is None
    if papers is None:
        papers = gather(config, None)
    return build_preview(config, papers, out_dir, use_window=use_window, now=now, issue_id=issue_id)


def write_preview_from_sources(
    config: Config,
    sources: Sequence[str] | None,
    out_dir: Path,
    *,
    now: datetime | None = None,
    issue_id: str | None = None,
) -> PreviewResult:
    """Read `--papers` sources (all of them go in) or the config's sources; write the preview."""
    papers = gather(config, sources)
    return build_preview(
        config, papers, out_dir, use_window=not sources, now=now, issue_id=issue_id
    )


def gather(config: Config, sources: Sequence[str] | None) -> list[Paper]:
    """Read the papers the way `run` does (`--papers` sources, else the configured ones)."""
    return gather_papers(config, list(sources) if sources else None)


def build_preview(
    config: Config,
    papers: list[Paper],
    out_dir: Path,
    *,
    use_window: bool,
    now: datetime | None = None,
    issue_id: str | None = None,
) -> PreviewResult:
    """Plan the issue as `run` would (this week's archived issue, or `papers` less those sent
    before), render it, then write the three preview files."""
    store = Store.if_exists(config.state_settings())
    try:
        issue, _ = plan_issue(
            config, store, lambda: papers, issue_id=issue_id, now=now, use_window=use_window
        )
    finally:
        if store is not None:
            store.close()
    rendered = render_issue(issue, config.render_settings())
    return write_files(config, issue, rendered, out_dir, now=now)


def write_files(
    config: Config,
    issue: Issue,
    rendered: RenderedEmail,
    out_dir: Path,
    *,
    now: datetime | None = None,
) -> PreviewResult:
    """Write the rendered parts, their links filled for an example subscriber, and the preview
    page; each file appears whole or not at all."""
    links = example_links(config, now=now)
    html_bytes = fill(rendered.html, links, as_html=True).encode("utf-8")
    text = fill(rendered.text, links, as_html=False)
    text_bytes = text.encode("utf-8")
    result = PreviewResult(
        out_dir=out_dir,
        issue_id=issue.id,
        subject=rendered.subject,
        paper_count=issue.paper_count,
        # What this email shows: the render may move papers to the web to fit the size budget.
        email_count=rendered.papers_shown,
        web_only_count=rendered.web_only,
        sections=tuple(SectionCount(s.topic, s.total) for s in issue.sections),
        html_bytes=len(html_bytes),
        text_bytes=len(text_bytes),
        budget_kb=config.size_budget_kb,
        example_subscriber=links.email,
    )
    # Render the page before touching the folder, so a template error leaves the last good preview.
    page = render_index(config, result, text, built=now or datetime.now(timezone.utc))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / "email.html", html_bytes)
        atomic_write(out_dir / "email.txt", text_bytes)
        atomic_write(out_dir / "index.html", page.encode("utf-8"))
    except OSError as e:
        raise PreviewError(f"{out_dir}: cannot write the preview ({e}); pass another --out") from e
    log.info("preview of %s written to %s", result.issue_id, out_dir)
    return result


def render_index(config: Config, result: PreviewResult, text: str, *, built: datetime) -> str:
    """Render the static preview page (no scripts: it works under a strict CSP)."""
    search = resources.template_dirs(config.render_settings().templates_dir)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in search]),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    budget = result.budget_kb * 1000
    try:
        return env.get_template(PREVIEW_TEMPLATE).render(
            title=config.title,
            r=result,
            text=text,
            size=f"{result.html_kb:.1f} KB of {result.budget_kb} KB",
            size_percent=min(100.0, 100.0 * result.html_bytes / budget),
            text_kb=f"{result.text_bytes / 1000:.1f} KB",
            built=built.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
            desktop_width=DESKTOP_WIDTH,
            phone_width=PHONE_WIDTH,
        )
    except jinja2.TemplateError as e:
        where = getattr(e, "filename", None) or PREVIEW_TEMPLATE
        line = getattr(e, "lineno", None)
        raise RenderError(f"{where}{f':{line}' if line else ''}: {e}; fix the template") from e


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder, fsync and rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a preview folder may be served by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_line(result: PreviewResult) -> str:
    """The one line of counts `newsletter preview` ends with."""
    over = " (OVER BUDGET)" if result.over_budget else ""
    return (
        f"preview: issue {result.issue_id}: {result.paper_count} papers in "
        f"{len(result.sections)} sections, {result.email_count} in the email, "
        f"{result.web_only_count} web-only, "
        f"HTML {result.html_kb:.1f} KB of {result.budget_kb} KB{over}; "
        f"open {result.index_path}"
    )
