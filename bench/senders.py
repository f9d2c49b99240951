"""Several `newsletter run` processes on one state: who got what, and how often.

    python bench/senders.py [--subscribers 3000] [--senders 2] [--state postgresql|sqlite]
                            [--connections 4] [--code PATH] [--kill-after N]

Each sender is a site of its own (its own config folder and subscribers file, as another host
would have), pointed at one state: a fresh database on a throwaway PostgreSQL cluster, or one
SQLite file. They start together and send this week's issue of the bundled sample papers to the
same subscribers, through one SMTP server on 127.0.0.1 (aiosmtpd, the tests' own) that records
every message with its envelope sender; each site sends as a different address, so the server
can tell whose share each message was. Printed: each sender's exit code and counts line, then
the recipients, messages and duplicates the server saw.

`--code PATH` runs the senders from another checkout (to compare with an earlier version).
`--kill-after N` kills the first sender (SIGKILL) once the server has N messages, and shows
what the others do with its rows.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

from sites import REPO, finish, postgres, start, write_site

from tests.support.smtp_server import smtp_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=3000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--state", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--code", type=Path, default=REPO, help="the checkout to run")
    parser.add_argument("--kill-after", type=int, default=0)
    parser.add_argument("--extra", default="", help="more config.yaml text for every site")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, smtp_server() as server:
        folder = Path(tmp)
        with postgres() if args.state == "postgresql" else nullcontext() as cluster:
            state = cluster.create_database() if cluster else str(folder / "state.db")
            sites = [
                write_site(
                    folder / f"host{i}",
                    port=server.port,
                    state=state,
                    connections=args.connections,
                    sender=f"digest+host{i}@example.org",
                    subscribers=args.subscribers,
                    extra=args.extra,
                    code=args.code,
                )
                for i in range(args.senders)
            ]
            started = time.perf_counter()
            procs = [
                start(site, "run", "--papers", "sample", code=args.code, log=site / "run.log")
                for site in sites
            ]
            if args.kill_after:
                while len(server.handler.received) < args.kill_after:
                    if procs[0].poll() is not None:
                        break
                    time.sleep(0.005)
                procs[0].send_signal(signal.SIGKILL)
            done = [finish(p, started, timeout=1800) for p in procs]
        received = list(server.handler.received)
        logs = [
            (site / "run.log").read_text(errors="replace").strip().splitlines() for site in sites
        ]

    print(
        f"{args.senders} senders, one {args.state} state, {args.subscribers:,} subscribers, "
        f"{args.connections} connections each, code: {args.code}"
    )
    shares = Counter(r.mail_from for r in received)
    for i, (log, result) in enumerate(zip(logs, done, strict=True)):
        last = result.last_line or (log[-1] if log else "")
        print(
            f"  sender {i}: exit {result.code}, {shares[f'digest+host{i}@example.org']:,} messages "
            f"at the server, {result.seconds:.1f} s; {last}"
        )
        errors = [line for line in log if "Error" in line or "error" in line.lower()]
        for line in errors[:3]:
            print(f"      {line[:200]}")
    per = Counter(r.rcpt for r in received)
    duplicates = sum(c - 1 for c in per.values())
    wanted = {f"reader{i:07d}@example.com" for i in range(args.subscribers)}
    missing = len(wanted - set(per))
    print(
        f"server: {len(per):,} recipients, {len(received):,} messages, {duplicates:,} duplicates, "
        f"{missing:,} never reached"
    )


if __name__ == "__main__":
    main()
