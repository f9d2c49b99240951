"""Measure `newsletter run` against Postfix's `smtp-source`, like with like, side by side.

    python bench/send.py [--subscribers 10000 100000] [--state sqlite postgresql]
                         [--senders 1 2] [--connections 4] [--repeat 2]
                         [--code PATH]... [--dkim]

Starts Postfix's `smtp-sink` on 127.0.0.1 (nothing leaves the machine) and, for each number of
subscribers, state and number of senders, runs each of these once per round (`--repeat` rounds,
the order turned by one place each round, so that no client always runs right after another):

1. `newsletter run --papers sample` in one site per sender (a config folder of its own, as each
   host would have), all on one state (a SQLite file, or a fresh database on a throwaway
   PostgreSQL cluster with the tests' settings: fsync off), sending the sample issue to N
   subscribers over ten topic selections (one in ten plain text), `--connections` each;
2. `smtp-source` with the same number of sessions in all (connections x senders), sending N
   messages of the same average size (for each checkout compared, its own): the bytes the sink
   read per message from our run, the commands included, are measured (`/proc/PID/io` of the
   sink), and smtp-source gets a message sized so that it makes the sink read as many bytes per
   message (printed for both; a first run of each checkout, not counted, measures it).

For our side two rates are shown: `send`, over the seconds the counts line gives (writing the
audience into the ledger, then the delivery to the last mark; earlier versions count the same),
and `whole`, over the whole process (start-up, building the issue, rendering the variants, the
audience, the delivery).
CPU time per message is shown for each client, for the sink meanwhile and, with PostgreSQL, for
the database server; `other` is the CPU that other processes on the machine used meanwhile
(the machine is shared), as a share of all its cores. `--code PATH` (repeatable) also runs
another checkout of newsletter, interleaved, to compare versions on the same machine state.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sites import (
    REPO,
    Sink,
    busy_seconds,
    cpu_seconds,
    finish,
    loadavg,
    postgres,
    smtp_sink,
    start,
    write_site,
    write_subscribers,
)

SENDER = "digest@example.org"
_SECONDS = re.compile(r" in ([0-9.]+) s")


@dataclass
class Measured:
    label: str
    messages: int
    send_seconds: float  # ours: the counts line's; smtp-source: its wall time
    whole_seconds: float
    cpu: float  # the client's CPU seconds (all senders)
    sink_cpu: float
    db_cpu: float
    other_cpu: float  # CPU used meanwhile by everything else on the machine
    wire_bytes: float  # bytes the sink read per message
    peak_mb: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.send_seconds

    @property
    def whole_rate(self) -> float:
        return self.messages / self.whole_seconds


class Meter:
    """CPU and bytes around one measured client run."""

    def __init__(self, sink: Sink, db_pid: int | None) -> None:
        self.sink, self.db_pid = sink, db_pid

    @contextmanager
    def around(self) -> Iterator[dict[str, float]]:
        out: dict[str, float] = {}
        busy, sink_cpu, wire = busy_seconds(), self.sink.cpu(), self.sink.bytes_read()
        db = _tree_cpu(self.db_pid)
        started = time.perf_counter()
        yield out
        out["wall"] = time.perf_counter() - started
        out["busy"] = busy_seconds() - busy
        out["sink_cpu"] = self.sink.cpu() - sink_cpu
        out["wire"] = self.sink.bytes_read() - wire
        out["db_cpu"] = _tree_cpu(self.db_pid) - db


def _tree_cpu(pid: int | None) -> float:
    """CPU of a server process and its children, the exited ones included (PostgreSQL)."""
    if pid is None:
        return 0.0
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += cpu_seconds(int(proc.name))
    return total


def _postmaster(port: int) -> int | None:
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if f"port={port}".encode() in cmdline and b"listen_addresses" in cmdline:
            return int(proc.name)
    return None


def run_ours(
    meter: Meter,
    folder: Path,
    code: Path,
    label: str,
    n: int,
    senders: int,
    connections: int,
    state: str,
    extra: str,
    subscribers: Path,
) -> Measured:
    """`newsletter run` in `senders` sites at once on one state; the numbers of all of them."""
    sites = []
    for i in range(senders):
        site = write_site(
            folder / f"{label}-{i}",
            port=meter.sink.port,
            state=state,
            connections=connections,
            sender=SENDER,
            extra=extra,
            code=code,
        )
        shutil.copy(subscribers, site / "subscribers.yaml")
        sites.append(site)
    with meter.around() as m:
        started = time.perf_counter()
        procs = [start(site, "run", "--papers", "sample", code=code) for site in sites]
        done = [finish(p, started) for p in procs]
    for result in done:
        if result.code != 0:
            raise SystemExit(f"{label}: newsletter run failed: {result.err.strip()[-800:]}")
    sent = 0
    send_seconds = 0.0
    for result in done:
        line = result.last_line
        sent += int(line.split("; ", 1)[1].split(" sent", 1)[0])
        found = _SECONDS.search(line)
        send_seconds = max(send_seconds, float(found.group(1)) if found else result.seconds)
    if sent != n:
        raise SystemExit(f"{label}: {sent} sent, not {n}: {[r.last_line for r in done]}")
    cpu = sum(r.cpu for r in done)
    return Measured(
        label,
        n,
        send_seconds,
        max(r.seconds for r in done),
        cpu,
        m["sink_cpu"],
        m["db_cpu"],
        max(0.0, m["busy"] - cpu - m["sink_cpu"] - m["db_cpu"]),
        m["wire"] / n,
        max(r.peak_mb for r in done),
        "; ".join(r.last_line.split("; ", 1)[1] for r in done),
    )


def source_message(path: Path, size: int) -> None:
    """Write a message for smtp-source of `size` bytes once sent (CRLF lines of 78)."""
    head = (
        f"From: Weekly Papers <{SENDER}>\nTo: reader@example.com\nSubject: Papers of the week\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\n"
    )
    line = "x" * 76 + "\n"  # 78 bytes on the wire (CRLF)
    body_wire = max(0, size - len(head) - head.count("\n"))
    full, rest = divmod(body_wire, len(line) + 1)
    text = head + line * full + ("y" * max(0, rest - 2) + "\n" if rest >= 2 else "")
    path.write_text(text)


def run_source(meter: Meter, folder: Path, n: int, sessions: int, size: int) -> Measured:
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    message = folder / "source.eml"
    source_message(message, size)
    # -F: the message file (smtp-source sends its lines with CRLF, dot-stuffed); -d: reuse each
    # connection for the next message, as we do
    cmd = [binary, "-d", "-s", str(sessions), "-m", str(n), "-F", str(message)]
    cmd += ["-f", SENDER, "-t", "reader@example.com", f"127.0.0.1:{meter.sink.port}"]
    with meter.around() as m:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        result = finish(proc, started)
    if result.code != 0:
        raise SystemExit(f"smtp-source failed: {result.err}")
    return Measured(
        "smtp-source",
        n,
        result.seconds,
        result.seconds,
        result.cpu,
        m["sink_cpu"],
        0.0,
        max(0.0, m["busy"] - result.cpu - m["sink_cpu"]),
        m["wire"] / n,
    )


def matched_size(meter: Meter, folder: Path, sessions: int, wire_bytes: float) -> int:
    """The message size that makes smtp-source's bytes per message at the sink `wire_bytes`."""
    probe = max(1000, int(wire_bytes) - 200)
    calibration = run_source(meter, folder, 300, sessions, probe)
    return max(200, probe + round(wire_bytes - calibration.wire_bytes))


def show(m: Measured, cores: int, base: Measured | None) -> str:
    ratio = f"  {m.rate / base.rate:5.2f}x" if base is not None else "       "
    whole = (
        f"  whole {m.whole_rate:6.0f}/s {m.whole_rate / base.rate:4.2f}x"
        if base is not None
        else " " * 25
    )
    per = 1e6 / m.messages
    db = f" db {m.db_cpu * per:3.0f}" if m.db_cpu else ""
    peak = f"  peak {m.peak_mb:4.0f} MB" if m.peak_mb else ""
    return (
        f"  {m.label:<14} {m.send_seconds:6.2f} s {m.rate:7.0f} msg/s{ratio}{whole}  "
        f"{m.wire_bytes / 1000:5.1f} KB/msg  cpu/msg us: client {m.cpu * per:4.0f} "
        f"sink {m.sink_cpu * per:3.0f}{db}  other {m.other_cpu / m.whole_seconds / cores:4.0%}"
        f"{peak}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--state", nargs="+", choices=("sqlite", "postgresql"))
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--code", type=Path, action="append", help="another checkout to run")
    parser.add_argument("--dkim", action="store_true", help="sign every message (DKIM)")
    args = parser.parse_args()
    codes = [REPO] + [c.resolve() for c in args.code or []]
    labels = {code: ("this" if code == REPO else code.name) for code in codes}
    states = args.state or ["sqlite", "postgresql"]
    cores = os.cpu_count() or 1

    print(
        f"machine: {cores} cores, load average {loadavg()}; sink: Postfix smtp-sink on 127.0.0.1; "
        f"{args.connections} connections per sender; each line below is one run, and each "
        "group's runs are interleaved, side by side"
    )
    with tempfile.TemporaryDirectory() as tmp, smtp_sink() as sink:
        folder = Path(tmp)
        extra = _dkim(folder) if args.dkim else ""
        pg = postgres() if "postgresql" in states else nullcontext()
        with pg as cluster:
            db_pid = _postmaster(cluster.port) if cluster is not None else None
            for n in args.subscribers:
                write_subscribers(folder / "subscribers.yaml", n)
                for state in states:
                    for senders in args.senders:
                        if state == "sqlite" and senders > 1:
                            continue  # one sender per SQLite state: a second one is refused
                        meter = Meter(sink, db_pid if state == "postgresql" else None)
                        _group(
                            meter,
                            folder,
                            codes,
                            labels,
                            n,
                            state,
                            senders,
                            args,
                            cluster,
                            extra,
                            cores,
                        )
    print(f"load average at the end: {loadavg()}")


def _group(
    meter: Meter,
    folder: Path,
    codes: list[Path],
    labels: dict[Path, str],
    n: int,
    state: str,
    senders: int,
    args: Any,
    cluster: Any,
    extra: str,
    cores: int,
) -> None:
    sessions = args.connections * senders
    print(
        f"\n{n:,} subscribers, {state}, {senders} sender(s) x {args.connections} connections "
        f"= smtp-source -s {sessions}:"
    )

    def run(code: Path, round_: int | str) -> Measured:
        """One run of a checkout on a fresh state (a new SQLite file or PostgreSQL database)."""
        if state == "postgresql":
            url = cluster.create_database()
        else:
            url = str(folder / f"state-{labels[code]}-{n}-{round_}.db")
        site = folder / f"r{n}-{state}-{senders}-{labels[code]}-{round_}"
        subscribers = folder / "subscribers.yaml"
        return run_ours(
            meter, site, code, labels[code], n, senders, args.connections, url, extra, subscribers
        )

    ours: dict[Path, list[Measured]] = {code: [] for code in codes}
    source: dict[Path, list[Measured]] = {code: [] for code in codes}
    # each checkout is set against smtp-source sending messages of its own average size (an
    # earlier version's messages may be larger or smaller), measured by a first run of it that
    # is not counted (it also warms the caches)
    sizes: dict[Path, int] = {}
    for code in codes:
        warm = run(code, "warm")
        sizes[code] = matched_size(meter, folder, sessions, warm.wire_bytes)
    # Every round runs each client once, the order turned by one place each round: no client
    # always runs right after another (a run right after smtp-source's took 0.3 s longer than
    # the others at 10,000 messages on this machine: a fixed order is a bias).
    clients = [(code, False) for code in codes] + [(code, True) for code in codes]
    for round_ in range(args.repeat):
        turn = round_ % len(clients)
        for code, is_source in clients[turn:] + clients[:turn]:
            if is_source:
                measured = run_source(meter, folder, n, sessions, sizes[code])
                source[code].append(measured)
            else:
                measured = run(code, round_)
                ours[code].append(measured)
            print(show(measured, cores, None), flush=True)
    for code in codes:
        rate = statistics.median(m.rate for m in source[code])
        wire = source[code][0].wire_bytes
        print(
            f"  -> {labels[code]} against the median of smtp-source at its size ({rate:.0f} msg/s, "
            f"{sessions} sessions, {wire / 1000:.1f} KB per message at the sink):"
        )
        base = Measured("smtp-source", n, n / rate, 0, 0, 0, 0, 0, wire)
        for m in ours[code]:
            print(show(m, cores, base))


def _dkim(folder: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return f"dkim: {{domain: example.org, selector: bench, key_path: {path}}}\n"


if __name__ == "__main__":
    main()
