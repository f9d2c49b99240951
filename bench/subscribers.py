"""Peak memory and time of `newsletter run` and `subscribers import` at 100,000 and 1,000,000.

    python bench/subscribers.py [--n 100000 1000000] [--state sqlite postgresql]
                                [--code PATH]... [--no-run]

For each N, in a temporary folder: a subscribers.yaml of N entries over ten topic choices (one
in ten plain text) and the same list as CSV, then, each as a process of its own (its peak
resident memory is its own, from wait4):

- `newsletter subscribers import list.csv` and `... list.yaml` into a fresh state;
- `newsletter run --papers sample` with the N-entry subscribers.yaml, sending the sample issue to
  every one of them through Postfix's smtp-sink on 127.0.0.1 (nothing leaves the machine);
- `newsletter run` again on the same state: the resumed run that finds everyone sent.

`--code PATH` (repeatable) runs another checkout the same way, one after the other, to compare.
The state is a SQLite file, or a fresh database on a throwaway PostgreSQL cluster (the tests'
settings). Also printed: the time `Ledger.write_audience` takes to write N rows (this checkout
only).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from sites import (
    REPO,
    choices,
    finish,
    loadavg,
    postgres,
    smtp_sink,
    start,
    write_site,
    write_subscribers,
)


def write_csv(path: Path, n: int) -> None:
    picks = choices()
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "topics", "format"])
        for i in range(n):
            topics = picks[i % len(picks)]
            writer.writerow(
                [
                    f"reader{i:07d}@example.com",
                    f"Reader {i}" if i % 3 else "",
                    ";".join(topics) if topics else "",
                    "text" if i % 10 == 9 else "",
                ]
            )


def measure(site: Path, code: Path, *args: str) -> tuple[Any, str]:
    started = time.perf_counter()
    result = finish(start(site, *args, code=code), started)
    if result.code != 0:
        raise SystemExit(f"newsletter {' '.join(args)} failed: {result.err.strip()[-800:]}")
    return result, result.last_line


ENQUEUE = """
import sys, time
from newsletter.store.state import Store
n, url = int(sys.argv[1]), sys.argv[2]
def rows():
    return ((f"reader{i:07d}@example.com", "html:all", f"Reader {i}") for i in range(n))
with Store.open(url) as store:
    started = time.perf_counter()
    store.ledger.write_audience("2026-W48", rows())
    first = time.perf_counter() - started
    started = time.perf_counter()
    store.ledger.write_audience("2026-W48", rows())
    again = time.perf_counter() - started
print(f"{first:.1f} {again:.1f}")
"""


def enqueue_seconds(n: int, url: str) -> tuple[float, float]:
    out = subprocess.run(
        [sys.executable, "-c", ENQUEUE, str(n), url],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    first, again = out.stdout.split()
    return float(first), float(again)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--state", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"])
    parser.add_argument("--code", type=Path, action="append", help="another checkout to run")
    parser.add_argument("--no-run", action="store_true", help="imports only, no `run`")
    parser.add_argument("--no-enqueue", action="store_true", help="leave out Ledger.write_audience")
    args = parser.parse_args()
    codes = [REPO] + [c.resolve() for c in args.code or []]
    print(f"machine: {os.cpu_count()} cores, load average {loadavg()}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        smtp_sink() as sink,
        postgres() if "postgresql" in args.state else nullcontext() as cluster,
    ):
        folder = Path(tmp)
        for n in args.n:
            write_subscribers(folder / "list.yaml", n)
            write_csv(folder / "list.csv", n)
            size = (folder / "list.yaml").stat().st_size / 1e6
            print(f"\n{n:,} subscribers (subscribers.yaml {size:.0f} MB):")
            for state in args.state:
                for code in codes:
                    _one(folder, sink.port, code, n, state, cluster, args.no_run)
                if args.no_enqueue:
                    continue
                if state == "postgresql":
                    first, again = enqueue_seconds(n, cluster.create_database())
                else:
                    first, again = enqueue_seconds(n, str(folder / f"enqueue-{n}.db"))
                print(
                    f"  this, {state}: Ledger.write_audience of {n:,} rows {first:.1f} s, "
                    f"again (all there) {again:.1f} s"
                )
    print(f"load average at the end: {loadavg()}")


def _one(
    folder: Path, port: int, code: Path, n: int, state: str, cluster: Any, no_run: bool
) -> None:
    label = "this" if code == REPO else code.name
    for kind in ("csv", "yaml"):
        url = cluster.create_database() if state == "postgresql" else "state.db"
        site = write_site(
            folder / f"import-{label}-{state}-{n}-{kind}", port=port, state=url, code=code
        )
        result, line = measure(site, code, "subscribers", "import", str(folder / f"list.{kind}"))
        print(
            f"  {label}, {state}: subscribers import ({kind})  peak {result.peak_mb:5.0f} MB  "
            f"{result.seconds:6.1f} s  cpu {result.cpu:6.1f} s  {line}"
        )
    if no_run:
        return
    url = cluster.create_database() if state == "postgresql" else "state.db"
    site = write_site(folder / f"run-{label}-{state}-{n}", port=port, state=url, code=code)
    os.link(folder / "list.yaml", site / "subscribers.yaml")
    for what in ("run", "run again"):
        result, line = measure(site, code, "run", "--papers", "sample")
        print(
            f"  {label}, {state}: {what:<24} peak {result.peak_mb:5.0f} MB  "
            f"{result.seconds:6.1f} s  cpu {result.cpu:6.1f} s  {line}"
        )


if __name__ == "__main__":
    main()
