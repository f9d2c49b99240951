from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from newsletter import resources
from newsletter.audience.tokens import read_token
from newsletter.config import Config, load_config, parse_config
from newsletter.errors import NewsletterError, RenderError, TokenError
from newsletter.models import Paper
from newsletter.preview import files as preview
from newsletter.preview import server as preview_server
from newsletter.preview.links import (
    EXAMPLE_ID,
    EXAMPLE_SUBSCRIBER,
    PREVIEW_KEY,
    example_links,
    fill,
)
from newsletter.render.renderer import render_issue
from newsletter.sources import read_source
from newsletter.store.schema import new_id
from newsletter.topics.issue import build_issue

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=timezone.utc)
FILES = {"email.html", "email.txt", "index.html"}


@pytest.fixture(scope="module")
def sample() -> list[Paper]:
    return read_source("sample")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return parse_config(resources.default_config_text(), "config.yaml", tmp_path)


class _Tags(HTMLParser):
    """Collect start tags with their attributes (to check links and frames, not text)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def test_write_preview_writes_the_exact_mime_parts(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    result = preview.write_preview(config, sample, out, now=NOW)

    assert {p.name for p in out.iterdir()} == FILES
    expected = render_issue(
        build_issue(sample, config.issue_settings(), now=NOW, use_window=False),
        config.render_settings(),
    )
    links = example_links(config, now=NOW)
    html = (out / "email.html").read_text(encoding="utf-8")
    text = (out / "email.txt").read_text(encoding="utf-8")
    # The parts as an example subscriber gets them: the same bytes with their links filled in.
    assert html == fill(expected.html, links, as_html=True) != expected.html
    assert text == fill(expected.text, links, as_html=False) != expected.text
    assert "%%" not in html and "%%" not in text
    assert f"Unsubscribe: {config.base_url}/unsubscribe?token=" in text
    hrefs = [a.get("href") for t, a in tags(html) if t == "a"]
    assert links.preferences in hrefs and links.unsubscribe in hrefs
    # A real-looking token, but signed with a key no server holds: it unsubscribes no one.
    token = links.unsubscribe.split("token=")[1]
    # like a real link it carries an opaque id of the same form, never the address
    assert read_token("unsubscribe", token, [PREVIEW_KEY]) == EXAMPLE_ID
    assert len(EXAMPLE_ID) == len(new_id()) and "@" not in EXAMPLE_ID
    with pytest.raises(TokenError):
        read_token("unsubscribe", token, ["a-real-server-key-0123456789"])
    assert EXAMPLE_SUBSCRIBER in (out / "index.html").read_text(encoding="utf-8")
    assert result.html_bytes == (out / "email.html").stat().st_size
    assert result.issue_id == "2026-W48"
    assert result.paper_count == 83  # the bundled sample page, every paper given by hand


def test_configured_sources_are_windowed_but_papers_given_by_hand_all_go_in(
    tmp_path: Path,
) -> None:
    items = [
        {"id": "2611.00001", "title": "Fresh diffusion paper", "published": "2026-11-24"},
        {"id": "2601.00002", "title": "Stale reasoning paper", "published": "2026-01-10"},
    ]
    (tmp_path / "papers.json").write_text(json.dumps(items), encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("sources: [papers.json]\n", encoding="utf-8")
    config = load_config(cfg)

    preview.write_preview(config, None, tmp_path / "weekly", now=NOW)
    weekly = (tmp_path / "weekly" / "email.txt").read_text(encoding="utf-8")
    assert "Fresh diffusion paper" in weekly
    assert "Stale reasoning paper" not in weekly  # outside the 7-day window before NOW

    given = preview.write_preview_from_sources(
        config, [str(tmp_path / "papers.json")], tmp_path / "given", now=NOW
    )
    assert given.paper_count == 2
    assert "Stale reasoning paper" in (tmp_path / "given" / "email.txt").read_text("utf-8")


def test_index_shows_both_widths_size_against_budget_and_the_text_version(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    result = preview.write_preview(config, sample, out, now=NOW)
    page = (out / "index.html").read_text(encoding="utf-8")

    size_kb = (out / "email.html").stat().st_size / 1000
    assert f"{size_kb:.1f} KB of 100 KB" in page
    found = tags(page)
    frames = [a for t, a in found if t == "iframe"]
    assert [f["src"] for f in frames] == ["email.html", "email.html"]
    assert re.search(r"\.desktop iframe \{ width: (\d+)px", page).group(1) == "800"  # type: ignore[union-attr]
    assert re.search(r"\.phone iframe \{ width: (\d+)px", page).group(1) == "375"  # type: ignore[union-attr]
    assert "email.txt" in [a.get("href") for t, a in found if t == "a"]
    # The text twin is also on the page itself, a click away in a <details>.
    text = (out / "email.txt").read_text(encoding="utf-8")
    first_title = sample_title_in(text, sample)
    assert first_title in page
    assert "2026-W48" in page
    assert re.search(rf'id="paper-count">{result.paper_count}<', page)
    assert re.search(rf'id="web-only-count">{result.web_only_count}<', page)
    # Static: no script of any kind, so the page works under a script-src 'none' policy.
    assert "script" not in {t for t, _ in found}
    assert not any(k.startswith("on") for _, a in found for k in a)


def sample_title_in(text: str, papers: list[Paper]) -> str:
    """Return the title of a paper that appears in `text` (escaping-free: no & < > in it)."""
    for paper in papers:
        if paper.title in text and not set("&<>\"'") & set(paper.title):
            return paper.title
    raise AssertionError("no sample title appears in the text part")


def test_index_warns_when_the_html_is_over_budget(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    # An email rendered for the 100 KB budget, shown against a config whose budget is 10 KB
    # (as when a user's own templates overshoot and the render cannot shrink enough).
    issue = build_issue(sample, config.issue_settings(), now=NOW, use_window=False)
    rendered = render_issue(issue, config.render_settings())
    small = config.model_copy(update={"size_budget_kb": 10})
    result = preview.write_files(small, issue, rendered, tmp_path / "out")

    assert result.over_budget
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    size = (tmp_path / "out" / "email.html").stat().st_size  # as a subscriber gets it
    assert f"{size / 1000:.1f} KB of 10 KB — over budget" in page
    assert "OVER BUDGET" in preview.summary_line(result)


def test_atomic_writes_leave_no_temp_files(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    preview.write_preview(config, sample, out, now=NOW)
    preview.write_preview(config, sample[:10], out, now=NOW)  # over an existing preview
    assert {p.name for p in out.iterdir()} == FILES
    assert (out / "email.html").stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp_file(
    config: Config, sample: list[Paper], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "preview"
    preview.write_preview(config, sample, out, now=NOW)
    before = (out / "email.html").read_bytes()

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(NewsletterError, match=r"cannot write the preview.*--out"):
        preview.write_preview(config, sample[:5], out, now=NOW)
    assert {p.name for p in out.iterdir()} == FILES
    assert (out / "email.html").read_bytes() == before


def test_a_broken_template_raises_and_leaves_the_last_good_preview(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    out = tmp_path / "preview"
    preview.write_preview(config, sample, out, now=NOW)
    before = {name: (out / name).read_bytes() for name in FILES}
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "email.txt").write_text("{% if %}\n", encoding="utf-8")
    broken = config.model_copy(update={"templates_dir": templates})

    with pytest.raises(RenderError, match="email.txt"):
        preview.write_preview(broken, sample, out, now=NOW)
    assert {name: (out / name).read_bytes() for name in FILES} == before


def test_summary_line_names_counts_size_and_where_to_look(
    config: Config, sample: list[Paper], tmp_path: Path
) -> None:
    result = preview.write_preview(config, sample, tmp_path / "p", now=NOW)
    line = preview.summary_line(result)
    assert line.startswith("preview: issue 2026-W48: 83 papers in ")
    assert f"HTML {result.html_bytes / 1000:.1f} KB of 100 KB" in line
    assert str(tmp_path / "p" / "index.html") in line


# -- the serve loop -------------------------------------------------------------------------------


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # 127.0.0.1 only
        return response.read().decode("utf-8")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_stderr(capsys: pytest.CaptureFixture[str], text: str) -> str:
    """Wait until the server printed a line containing `text`; return that line."""
    seen: list[str] = []
    wait_for(lambda: seen.append(capsys.readouterr().err) or text in "".join(seen), repr(text))
    lines = [ln for ln in "".join(seen).splitlines() if text in ln]
    return lines[0]


class Served:
    def __init__(self, url: str, stop: threading.Event, thread: threading.Thread) -> None:
        self.url, self.stop, self.thread = url, stop, thread

    def get(self, name: str) -> str:
        return fetch(self.url + name)


@pytest.fixture
def serve() -> Iterator[Callable[..., Served]]:
    """Start the preview server in a thread on a free port; stop it (and check it stopped) after."""
    started: list[Served] = []
    errors: list[BaseException] = []

    def start(config: Config, sources: list[str], out: Path) -> Served:
        stop = threading.Event()
        ready: list[str] = []

        def run() -> None:
            try:
                preview_server.serve(
                    config,
                    sources,
                    out,
                    port=0,
                    poll_interval=0.05,
                    stop=stop,
                    on_ready=ready.append,
                )
            except BaseException as e:  # surfaced by the fixture, not lost in the thread
                errors.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        wait_for(lambda: bool(ready) or bool(errors), "the preview server to start")
        if errors:
            raise errors[0]
        served = Served(ready[0], stop, thread)
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop.set()
        served.thread.join(timeout=10)
        assert not served.thread.is_alive(), "the preview server did not stop"
    assert not errors, errors


def write_papers(path: Path, titles: list[str]) -> None:
    items = [
        {"id": f"2611.{i:05d}", "title": t, "abstract": f"About {t.lower()}."}
        for i, t in enumerate(titles, 1)
    ]
    path.write_text(json.dumps(items), encoding="utf-8")


def test_serve_rebuilds_after_a_template_changes_and_survives_a_broken_one(
    tmp_path: Path, serve: Callable[..., Served], capsys: pytest.CaptureFixture[str]
) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    bundled_txt = (resources.templates_dir() / "email.txt").read_text(encoding="utf-8")
    (templates / "email.txt").write_text(bundled_txt, encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text("templates_dir: templates\nsources: [papers.json]\n", encoding="utf-8")
    write_papers(tmp_path / "papers.json", ["Diffusion models for everything"])
    served = serve(load_config(cfg), [], tmp_path / "out")

    assert "Diffusion models for everything" in served.get("email.txt")
    assert "Edition marker one" not in served.get("email.txt")
    (templates / "email.txt").write_text(bundled_txt + "\nEdition marker one\n", encoding="utf-8")
    wait_for(lambda: "Edition marker one" in served.get("email.txt"), "the rebuilt text part")

    (templates / "email.txt").write_text("{% if %}\n", encoding="utf-8")
    line = wait_for_stderr(capsys, "preview: rebuild failed (email.txt): ")
    assert f"{templates / 'email.txt'}:1:" in line  # names the file and line
    assert "Edition marker one" in served.get("email.txt")  # the last good preview stays up
    assert "Edition marker one" in served.get("index.html")  # its text tab too

    (templates / "email.txt").write_text(bundled_txt + "\nEdition marker two\n", encoding="utf-8")
    wait_for(lambda: "Edition marker two" in served.get("email.txt"), "recovery after a fix")


def test_serve_reloads_the_config_and_papers_files(
    tmp_path: Path, serve: Callable[..., Served], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("title: Alpha Digest\nsources: [papers.json]\n", encoding="utf-8")
    write_papers(tmp_path / "papers.json", ["Diffusion models for everything"])
    served = serve(load_config(cfg), [], tmp_path / "out")
    assert "Alpha Digest" in served.get("email.html")

    cfg.write_text("title: Beta Digest\nsources: [papers.json]\n", encoding="utf-8")
    wait_for(lambda: "Beta Digest" in served.get("email.html"), "the new title")

    cfg.write_text("titel: Gamma Digest\nsources: [papers.json]\n", encoding="utf-8")
    line = wait_for_stderr(capsys, "preview: config not reloaded: ")
    assert "titel: unknown key (did you mean 'title'?)" in line
    assert "Beta Digest" in served.get("email.html")

    cfg.write_text("title: Beta Digest\nsources: [papers.json]\n", encoding="utf-8")
    write_papers(tmp_path / "papers.json", ["Diffusion models for everything", "Reasoning traces"])
    wait_for(lambda: "Reasoning traces" in served.get("email.html"), "the new paper")


def test_serve_watches_papers_files_given_on_the_command_line(
    config: Config, tmp_path: Path, serve: Callable[..., Served]
) -> None:
    papers = tmp_path / "week.json"
    write_papers(papers, ["Sparse attention revisited"])
    served = serve(config, [str(papers)], tmp_path / "out")
    assert "Sparse attention revisited" in served.get("email.txt")

    write_papers(papers, ["Sparse attention revisited", "Tokenizers without tears"])
    wait_for(lambda: "Tokenizers without tears" in served.get("email.txt"), "the new paper")


def test_serve_reports_a_port_in_use_in_one_line(config: Config, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(NewsletterError, match=rf"127.0.0.1:{port}.*another --port"):
            preview_server.serve(config, ["sample"], tmp_path / "out", port=port)
