"""`newsletter preview --serve`: serve the preview folder on localhost and rebuild on changes.

Watching is a poll of modification times (twice a second by default): it needs no extra library,
works the same on every platform and on network drives, and a few dozen files cost nothing. A
failed rebuild prints one line and leaves the last good preview in place, so editing a template
never takes the page down. The page has no scripts, so a rebuilt preview shows on browser reload.
"""

from __future__ import annotations

import functools
import http.server
import logging
import sys
import threading
import webbrowser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from newsletter import resources
from newsletter.config import Config, FileSource, load_config
from newsletter.errors import ConfigError, NewsletterError, PreviewError
from newsletter.preview import files as preview

if TYPE_CHECKING:
    from newsletter.models import Paper

log = logging.getLogger(__name__)

Snapshot = dict[Path, tuple[int, int]]
# The page and the email carry no scripts; the policy proves it and keeps a stray one inert.
CSP = "script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'"


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files from the preview folder, never cached, quiet in the terminal."""

    extensions_map = {  # noqa: RUF012 - the stdlib reads it as a class attribute
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".html": "text/html; charset=utf-8",
        ".txt": "text/plain; charset=utf-8",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", CSP)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s " + format, self.address_string(), *args)


@dataclass
class _Inputs:
    """What the last good build was made from."""

    config: Config
    papers: list[Paper]


class PreviewServer:
    """The preview folder behind a local HTTP server, rebuilt when its inputs change."""

    def __init__(
        self,
        config: Config,
        sources: Sequence[str] | None,
        out_dir: Path,
        *,
        issue_id: str | None = None,
        echo: Callable[[str], None] = _echo,
    ) -> None:
        self.sources = list(sources or ())
        self.out_dir = out_dir
        self.issue_id = issue_id
        self.echo = echo
        self._config = config
        self._inputs: _Inputs | None = None
        self._snapshot: Snapshot = {}
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- building --------------------------------------------------------------------------------

    def build(self) -> preview.PreviewResult:
        """Read the papers and write the first preview (errors propagate: nothing to show yet)."""
        papers = preview.gather(self._config, self.sources)
        result = self._write(self._config, papers)
        self._inputs = _Inputs(self._config, papers)
        self._snapshot = self.snapshot()
        return result

    def _write(self, config: Config, papers: list[Paper]) -> preview.PreviewResult:
        return preview.build_preview(
            config, papers, self.out_dir, use_window=not self.sources, issue_id=self.issue_id
        )

    def watched(self) -> list[Path]:
        """The files whose change triggers a rebuild: config, templates, papers files."""
        config = self._inputs.config if self._inputs else self._config
        files: list[Path] = []
        if config.path is not None:
            files.append(Path(config.path))
        for folder in resources.template_dirs(config.render_settings().templates_dir):
            if folder.is_dir():
                files.extend(p for p in sorted(folder.rglob("*")) if p.is_file())
        files.extend(self._papers_files(config))
        return files

    def _papers_files(self, config: Config) -> list[Path]:
        if self.sources:
            # `sample` and URLs are not files; anything else that exists on disk is watched.
            return [Path(s) for s in self.sources if "://" not in s and Path(s).is_file()]
        return [Path(s.path) for s in config.source_specs if isinstance(s, FileSource)]

    def snapshot(self) -> Snapshot:
        """Modification time and size of every watched file (missing files are left out)."""
        snap: Snapshot = {}
        for path in self.watched():
            try:
                st = path.stat()
            except OSError:
                continue
            snap[path] = (st.st_mtime_ns, st.st_size)
        return snap

    def check(self) -> bool:
        """Rebuild if a watched file changed; return whether a rebuild was attempted."""
        assert self._inputs is not None, "build() first"
        before = self._snapshot
        now = self.snapshot()
        changed = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
        if not changed:
            return False
        # Remember the new state even if the rebuild fails: retry on the next edit, not every poll.
        self._snapshot = now
        self.rebuild(changed)
        return True

    def rebuild(self, changed: set[Path]) -> None:
        """Rebuild after `changed`; on failure print one line and keep the last good preview."""
        assert self._inputs is not None
        names = ", ".join(sorted(p.name for p in changed))
        config = self._inputs.config
        papers = self._inputs.papers
        try:
            if config.path is not None and Path(config.path) in changed:
                config = self._reload_config(config)
            if self._papers_changed(changed, config):
                papers = preview.gather(config, self.sources)
            result = self._write(config, papers)
        except ConfigError as e:
            self.echo(f"preview: config not reloaded: {'; '.join(e.problems)}")
            return
        except NewsletterError as e:
            self.echo(f"preview: rebuild failed ({names}): {_one_line(str(e))}")
            return
        except Exception as e:  # a template or a plug-in can raise anything; keep serving
            log.debug("rebuild failed", exc_info=True)
            self.echo(f"preview: rebuild failed ({names}): {type(e).__name__}: {_one_line(str(e))}")
            return
        self._inputs = _Inputs(config, papers)
        # The config may name other templates or papers files now: watch those from here on. Files
        # watched before keep the state seen before this rebuild, so an edit made while it ran
        # is still noticed on the next poll.
        fresh = self.snapshot()
        self._snapshot = {p: self._snapshot.get(p, v) for p, v in fresh.items()}
        self.echo(f"preview: rebuilt after {names} changed; {preview.summary_line(result)}")

    def _reload_config(self, old: Config) -> Config:
        assert old.path is not None
        return load_config(old.path)

    def _papers_changed(self, changed: set[Path], config: Config) -> bool:
        assert self._inputs is not None
        if self._inputs.config.sources != config.sources:
            return True
        return bool(changed & set(self._papers_files(config)))

    # -- serving ---------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 8025) -> str:
        """Listen on host:port (0 picks a free port) in a background thread; return the URL."""
        handler = functools.partial(_Handler, directory=str(self.out_dir))
        try:
            self._httpd = http.server.ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise PreviewError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); pass another --port"
            ) from e
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="preview-http", daemon=True
        )
        self._thread.start()
        bound_host, bound_port = self._httpd.server_address[:2]
        if isinstance(bound_host, bytes):
            bound_host = bound_host.decode()
        return f"http://{bound_host}:{bound_port}/"

    def close(self) -> None:
        """Stop the HTTP server and wait for its thread."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def serve(
    config: Config,
    sources: Sequence[str] | None,
    out_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    open_browser: bool = False,
    poll_interval: float = 0.5,
    issue_id: str | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    echo: Callable[[str], None] = _echo,
) -> None:
    """Build, serve and poll until `stop` is set or Ctrl-C."""
    server = PreviewServer(config, sources, out_dir, issue_id=issue_id, echo=echo)
    result = server.build()
    url = server.start(host, port)
    stop = stop or threading.Event()
    try:
        echo(preview.summary_line(result))
        echo(f"preview: serving {url} (watching {len(server._snapshot)} files; Ctrl-C to stop)")
        if open_browser:
            webbrowser.open(url)
        if on_ready is not None:
            on_ready(url)
        while not stop.wait(poll_interval):
            server.check()
    except KeyboardInterrupt:
        echo("preview: stopped")
    finally:
        server.close()
