"""Measure how fast `newsletter serve` answers while the mail relay hangs.

    python bench/confirmations.py [--signups 45] [--clients 5]

Starts a relay on 127.0.0.1 that accepts every command and the whole message, then never
answers it (the fault that once froze every page), and a real `newsletter serve` sending its
confirmation emails there. Then posts the sign-ups, spread over `--clients` source addresses
(127.0.0.2, 127.0.0.3, ...), and times each answer, then the home page, the feed, the archive and
the stylesheet. Prints the median and the slowest answer of each kind, and how many
confirmations wait in the state's queue. Nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx
from sites import REPO  # also puts the repository on the import path

from tests.support.smtp_server import free_port, smtp_server  # the tests' relay


def start_serve(folder: Path, relay_port: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    config = folder / "config.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            title: Bench Digest
            base_url: {base}
            state: {folder / "state.db"}
            subscribers: {folder / "subscribers.yaml"}
            web: {{rate_limit_per_ip: 1000}}
            delivery:
              transport: smtp
              smtp: {{host: 127.0.0.1, port: {relay_port}, security: none}}
            """
        ),
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_SECRET_KEY"] = "bench-secret-key-0123456789abcdef"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "newsletter", "serve", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("newsletter serve did not start in 30 s")


def timed(client: httpx.Client, method: str, url: str, **kw: object) -> float:
    started = time.perf_counter()
    answer = client.request(method, url, timeout=30.0, **kw)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    assert answer.status_code == 200, (url, answer.status_code)
    return seconds


def line(label: str, seconds: list[float]) -> None:
    print(
        f"  {label:<34} n={len(seconds):<3} median {statistics.median(seconds) * 1000:7.1f} ms"
        f"   slowest {max(seconds) * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signups", type=int, default=45)
    parser.add_argument("--clients", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, smtp_server() as relay:
        relay.handler.faults.hang = True  # takes each message and never answers its end
        folder = Path(tmp)
        proc, base = start_serve(folder, relay.port)
        try:
            clients = [
                httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{2 + i}"))
                for i in range(args.clients)
            ]
            signups = [
                timed(
                    clients[n % args.clients],
                    "POST",
                    base + "/subscribe",
                    data={"email": f"reader{n}@example.org"},
                )
                for n in range(args.signups)
            ]
            pages = {
                path: [timed(clients[0], "GET", base + path) for _ in range(5)]
                for path in ("/", "/feed.xml", "/issues", "/static/style.css")
            }
            for client in clients:
                client.close()
            with sqlite3.connect(folder / "state.db") as db:
                queued = db.execute("SELECT count(*) FROM mail_queue").fetchone()[0]
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"machine: {os.cpu_count()} cores; relay: takes every message, never answers")
    line(f"sign-ups from {args.clients} addresses", signups)
    for path, seconds in pages.items():
        line(f"GET {path} after them", seconds)
    print(
        f"  confirmations waiting in the queue: {queued} of {args.signups}; "
        f"messages the relay holds unanswered: {relay.handler.hung}"
    )


if __name__ == "__main__":
    main()
