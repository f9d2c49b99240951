"""What the delivery benches share: sites (config folders), the sink, PostgreSQL, process numbers.

A site is what one host would have: a folder with `config.yaml` and `subscribers.yaml`, pointed
at a state (a SQLite file or a PostgreSQL URL) and at an SMTP server on 127.0.0.1. The benches run
the real `newsletter run` in it, as a process of its own, with `PYTHONPATH` set to the code under
test (this checkout by default, or another one to compare with).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support.smtp_server import free_port  # noqa: E402 (after the path above)

KEY = "bench-secret-key-0123456789abcdef"
SECTIONS = (  # the first sections of the sample issue (`--papers sample`), in issue order
    "LLM Reasoning",
    "Code & Software Engineering",
    "Language Models & NLP",
    "Multimodal & Video",
    "Diffusion & Image Generation",
    "Vision & 3D",
    "Speech & Audio",
    "Robotics & Reinforcement Learning",
)


def choices(topics: Sequence[str] = SECTIONS) -> list[list[str] | None]:
    """Ten topic choices: everything, single topics, pairs and larger mixes."""
    topics = list(topics)
    chosen: list[list[str] | None] = [None]
    chosen += [[t] for t in topics[:4]]
    chosen += [topics[i : i + 2] for i in range(0, 6, 2)]
    chosen += [topics[::2], topics[1::3]]
    return chosen


def write_subscribers(path: Path, n: int, *, start: int = 0) -> None:
    """Write n subscribers over the ten choices (one in ten plain text), streamed to the file."""
    picks = choices()
    with path.open("w", encoding="utf-8") as out:
        for i in range(start, start + n):
            out.write(f"- email: reader{i:07d}@example.com\n")
            if i % 3:
                out.write(f"  name: Reader {i}\n")
            topics = picks[i % len(picks)]
            if topics is not None:
                out.write("  topics: [" + ", ".join(json.dumps(t) for t in topics) + "]\n")
            if i % 10 == 9:
                out.write("  format: text\n")


def write_site(
    folder: Path,
    *,
    port: int,
    state: str,
    connections: int = 4,
    sender: str = "digest@example.org",
    subscribers: int | None = None,
    extra: str = "",
    code: Path = REPO,
) -> Path:
    """Make a config folder that sends over SMTP to 127.0.0.1:port; return it.

    The config starts from the default config of `code` (the checkout that will run in it: an
    earlier version does not know the later keys)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(
        (code / "config.yaml").read_text(encoding="utf-8")
        + "\nbase_url: https://news.example.org\n"
        + f"state: {state}\n"
        + f"sender: {{name: Weekly Papers, address: {sender}}}\n"
        + "delivery: {transport: smtp, smtp: {host: 127.0.0.1, "
        + f"port: {port}, security: none, connections: {connections}, timeout: 60}}}}\n"
        + extra,
        encoding="utf-8",
    )
    if subscribers is not None:
        write_subscribers(folder / "subscribers.yaml", subscribers)
    return folder


def env(code: Path = REPO) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(code), "NEWSLETTER_SECRET_KEY": KEY}


_OUTPUT: dict[int, tuple[IO[str], IO[str]]] = {}  # a started process's stdout and stderr files


def start(site: Path, *args: str, code: Path = REPO, log: Path | None = None) -> subprocess.Popen:
    """Start `newsletter ARGS` in a site, its output into files (stderr into `log`, if given):
    nothing waits on a full pipe however much a run writes."""
    # closed by `finish`, which reads them
    out = tempfile.TemporaryFile("w+")  # noqa: SIM115
    err = log.open("w+") if log is not None else tempfile.TemporaryFile("w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        cwd=site,
        env=env(code),
        stdout=out,
        stderr=err,
        text=True,
    )
    _OUTPUT[proc.pid] = (out, err)
    return proc


@dataclass
class Finished:
    code: int
    out: str
    err: str
    seconds: float  # wall time of the process
    cpu: float  # user + system seconds of the process
    peak_mb: float  # its peak resident memory

    @property
    def last_line(self) -> str:
        lines = (self.out.strip() or self.err.strip()).splitlines()
        return lines[-1] if lines else ""


def finish(proc: subprocess.Popen, started: float, timeout: float = 3600) -> Finished:
    """Wait for a process started by `start`; return its exit code, output, time, CPU, memory."""
    deadline = time.monotonic() + timeout
    # wait4 gives this child's own CPU time and peak memory (not every child's at once)
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    texts = []
    for file in _OUTPUT.pop(proc.pid, (proc.stdout, proc.stderr)):  # files, or another's pipes
        if file is None:
            texts.append("")
            continue
        if file.seekable():
            file.seek(0)
        texts.append(file.read())
        file.close()
    return Finished(
        proc.returncode,
        texts[0],
        texts[1],
        seconds,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,
    )


# -- machine load ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- the sink -------------------------------------------------------------------------------------


@dataclass
class Sink:
    port: int
    pid: int

    def bytes_read(self) -> int:
        """Bytes the sink has read from its sockets so far (/proc/PID/io rchar)."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        return 0

    def cpu(self) -> float:
        return cpu_seconds(self.pid)


@contextlib.contextmanager
def smtp_sink() -> Iterator[Sink]:
    """Run Postfix's smtp-sink on 127.0.0.1 (it accepts and discards every message)."""
    binary = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not Path(binary).exists():
        sys.exit("smtp-sink not found: install the Debian package postfix")
    port = free_port()
    cmd = [binary]
    if os.geteuid() == 0:
        cmd += ["-u", "postfix"]  # it refuses to run as root without dropping privileges
    cmd += [f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
                break
            time.sleep(0.02)
        else:
            sys.exit(
                f"smtp-sink did not start: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        yield Sink(port, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster (the tests' own, `tests/support/postgres.py`): its
    `create_database()` makes a fresh database and returns the URL."""
    from tests.support.postgres import cluster

    with cluster() as started:
        yield started
