"""Measure delivery: the sample issue to generated subscribers through a local SMTP sink.

    python bench/send.py [--subscribers 10000] [--connections 4] [--naive 200]
                         [--big 100000] [--no-big] [--dkim]

Starts Postfix's `smtp-sink` on 127.0.0.1 (nothing leaves the machine), then, on that sink:

1. `deliver` to N subscribers spread over 10 topic selections (one in ten wants plain text),
   with the ledger on (a temporary SQLite store): messages per second end to end (ledger
   writes, variant renders and tokens included) and peak memory (ru_maxrss of that process);
2. Postfix's own `smtp-source` sending N messages of the same size over the same number of
   reused connections: the ceiling for this machine and sink;
3. a naive path that renders the issue and builds the MIME message with `EmailMessage` for every
   subscriber, then sends it: measured on `--naive` subscribers and extrapolated;
4. `deliver` to `--big` subscribers, for peak memory (sent to the sink too).

Each `deliver` run is its own process so its peak memory is its own. CPU time per message is
shown too, for each client and for the sink while that client ran: on a busy machine it varies
less than the rate does, and it shows which side bounds the rate.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter import resources  # noqa: E402
from newsletter.config import Config, parse_config  # noqa: E402
from newsletter.models import Issue, Subscriber  # noqa: E402

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)
KEY = "bench-secret-key-0123456789abcdef"
SENDER = "digest@example.org"


def sample_issue(config: Config) -> Issue:
    from newsletter.sources import read_source
    from newsletter.topics.issue import build_issue

    papers = read_source("sample", now=NOW)
    return build_issue(
        papers, config.issue_settings(), now=NOW, issue_id="2026-W48", use_window=False
    )


def bench_config(port: int, connections: int, folder: Path, dkim: bool) -> Config:
    extra = (
        "\nbase_url: https://news.example.org\n"
        f"delivery: {{transport: smtp, smtp: {{host: 127.0.0.1, port: {port}, "
        f"security: none, connections: {connections}, timeout: 60}}}}\n"
    )
    if dkim:
        extra += "dkim: {domain: example.org, selector: bench, key_path: dkim.pem}\n"
        _write_dkim_key(folder / "dkim.pem")
    return parse_config(resources.default_config_text() + extra, "bench", folder)


def _write_dkim_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def selections(issue: Issue) -> list[frozenset[str] | None]:
    """Ten topic selections: everything, single topics, pairs and a larger mix."""
    topics = [s.topic for s in issue.sections]
    chosen: list[frozenset[str] | None] = [None]
    chosen += [frozenset({t}) for t in topics[:4]]
    chosen += [frozenset(topics[i : i + 2]) for i in range(0, 6, 2)]
    chosen += [frozenset(topics[::2]), frozenset(topics[1::3])]
    return chosen


def audience(issue: Issue, n: int) -> Iterator[Subscriber]:
    sels = selections(issue)
    for i in range(n):
        yield Subscriber(
            f"reader{i:06d}@example.com",
            f"Reader {i}" if i % 3 else None,
            topics=sels[i % len(sels)],
            format="text" if i % 10 == 9 else "html",
        )


# -- the sink -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def smtp_sink() -> Iterator[tuple[int, int]]:
    """Run Postfix's smtp-sink on 127.0.0.1; yield its port and process id."""
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
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


# -- measured runs --------------------------------------------------------------------------------


def child_deliver(port: int, n: int, connections: int, dkim: bool) -> dict[str, float]:
    """Deliver to n generated subscribers (in this process); return the numbers."""
    from newsletter.audience.tokens import SecretKeys
    from newsletter.delivery.send import deliver
    from newsletter.delivery.smtp import SmtpTransport
    from newsletter.store.state import Store

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = bench_config(port, connections, folder, dkim)
        issue = sample_issue(config.render_settings())
        started = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        with Store.open(folder / "state.db") as store:
            report = deliver(
                issue,
                config,
                audience(issue, n),
                store,
                SmtpTransport(config.delivery.smtp),
                keys=SecretKeys([KEY]),
            )
            counts = store.ledger.counts(issue.id)
        seconds = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime - cpu
    assert counts["sent"] == n and report.sent == n, (counts, report.summary())
    return {
        "sent": report.sent,
        "seconds": seconds,
        "rate": report.sent / seconds,
        "variants": report.variants,
        "cpu_seconds": cpu,
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_child(port: int, n: int, connections: int, dkim: bool) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", str(n), "--port", str(port)]
    cmd += ["--connections", str(connections)] + (["--dkim"] if dkim else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def sample_message(port: int, connections: int) -> bytes:
    """One personalised message of the every-topic variant, as the sink receives it."""
    from newsletter.audience.tokens import SecretKeys, make_token
    from newsletter.delivery.message import Links, build_template
    from newsletter.render.renderer import render_issue

    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(port, connections, Path(tmp), False)
    issue = sample_issue(config.render_settings())
    template = build_template(
        render_issue(issue, config.render_settings()), config.mail_settings(), issue.id
    )
    keys, addr = SecretKeys([KEY]), "reader000001@example.com"
    links = Links(
        f"{config.base_url}/unsubscribe?token={make_token('unsubscribe', addr, keys)}",
        f"{config.base_url}/preferences?token={make_token('preferences', addr, keys)}",
    )
    return template.fill(addr, "Reader 1", links)


def personalise_cost(port: int, connections: int, n: int = 5000) -> float:
    """Seconds to make one subscriber's message from a variant: two tokens and the fill."""
    from newsletter.audience.tokens import SecretKeys, make_token
    from newsletter.delivery.message import Links, build_template
    from newsletter.render.renderer import render_issue

    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(port, connections, Path(tmp), False)
    issue = sample_issue(config.render_settings())
    template = build_template(
        render_issue(issue, config.render_settings()), config.mail_settings(), issue.id
    )
    keys, base = SecretKeys([KEY]), config.base_url
    started = time.perf_counter()
    for i in range(n):
        addr = f"reader{i:06d}@example.com"
        links = Links(
            f"{base}/unsubscribe?token={make_token('unsubscribe', addr, keys)}",
            f"{base}/preferences?token={make_token('preferences', addr, keys)}",
        )
        template.fill(addr, f"Reader {i}", links)
    return (time.perf_counter() - started) / n


def smtp_source(port: int, n: int, connections: int, message: bytes) -> float:
    """Time Postfix's smtp-source sending n copies of `message` over reused connections."""
    binary = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        # -F adds CRLF to each line itself and dot-stuffs: give it LF lines
        f.write(message.replace(b"\r\n", b"\n"))
        f.flush()
        cmd = [binary, "-d", "-s", str(connections), "-m", str(n), "-F", f.name]
        cmd += ["-f", SENDER, "-t", "reader@example.com", f"127.0.0.1:{port}"]
        started = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def naive(port: int, n: int, connections: int) -> dict[str, float]:
    """Render and build every message from scratch, then send it: per-message seconds."""
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    from newsletter.audience.tokens import SecretKeys, make_token
    from newsletter.delivery.smtp import SmtpTransport
    from newsletter.render.renderer import (
        PREFERENCES_PLACEHOLDER,
        UNSUBSCRIBE_PLACEHOLDER,
        render_issue,
    )

    keys = SecretKeys([KEY])
    with tempfile.TemporaryDirectory() as tmp:
        config = bench_config(port, connections, Path(tmp), False)
    issue = sample_issue(config.render_settings())
    subs = list(audience(issue, n))
    build = 0.0
    started = time.perf_counter()
    with SmtpTransport(config.delivery.smtp) as transport:
        for sub in subs:
            t0 = time.perf_counter()
            rendered = render_issue(issue, config.render_settings(), topics=sub.topics)
            unsub = (
                f"{config.base_url}/unsubscribe?token={make_token('unsubscribe', sub.email, keys)}"
            )
            prefs = (
                f"{config.base_url}/preferences?token={make_token('preferences', sub.email, keys)}"
            )
            msg = EmailMessage()
            msg["From"] = f"{config.title} <{SENDER}>"
            msg["To"] = sub.email
            msg["Subject"] = rendered.subject
            msg["Date"] = format_datetime(NOW)
            msg["Message-ID"] = make_msgid(domain="example.org")
            msg["List-Unsubscribe"] = f"<{unsub}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

            def fill(text: str, unsub: str = unsub, prefs: str = prefs) -> str:
                return text.replace(UNSUBSCRIBE_PLACEHOLDER, unsub).replace(
                    PREFERENCES_PLACEHOLDER, prefs
                )

            msg.set_content(fill(rendered.text), cte="quoted-printable")
            if sub.format == "html":
                msg.add_alternative(fill(rendered.html), subtype="html", cte="quoted-printable")
            data = msg.as_bytes()
            build += time.perf_counter() - t0
            assert transport.send(SENDER, sub.email, data).ok
    total = time.perf_counter() - started
    return {"per_message": total / n, "build_per_message": build / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--naive", type=int, default=200)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--no-big", action="store_true")
    parser.add_argument("--dkim", action="store_true", help="also sign every message (DKIM)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_deliver(args.port, args.child, args.connections, args.dkim)))
        return

    n, conns = args.subscribers, args.connections
    with smtp_sink() as (port, sink):
        sink_cpu = cpu_seconds(sink)
        ours = run_child(port, n, conns, args.dkim)
        sink_ours = cpu_seconds(sink) - sink_cpu
        message = sample_message(port, conns)
        sink_cpu, source_cpu = cpu_seconds(sink), children_cpu()
        source_seconds = smtp_source(port, n, conns, message)
        sink_source = cpu_seconds(sink) - sink_cpu
        source_cpu = children_cpu() - source_cpu
        slow = naive(port, args.naive, conns)
        per_message = personalise_cost(port, conns)
        big = None if args.no_big else run_child(port, args.big, conns, args.dkim)

    source_rate = n / source_seconds
    naive_rate = 1 / slow["per_message"]
    print(f"machine: {os.cpu_count()} cores; sink: smtp-sink on 127.0.0.1; {conns} connections")
    print(f"message: {len(message):,} bytes (html variant, every topic)")
    print(
        f"deliver      {n:>7,} msgs  {ours['seconds']:6.1f} s  {ours['rate']:7.0f} msg/s  "
        f"peak {ours['maxrss_mb']:.0f} MB  ({ours['variants']:.0f} variants rendered"
        f"{', DKIM-signed' if args.dkim else ''})"
    )
    print(
        f"smtp-source  {n:>7,} msgs  {source_seconds:6.1f} s  {source_rate:7.0f} msg/s  "
        f"-> deliver is {ours['rate'] / source_rate:.2f}x smtp-source"
    )
    print(
        f"naive        {args.naive:>7,} msgs measured, {slow['per_message'] * 1000:.1f} ms/msg "
        f"({slow['build_per_message'] * 1000:.1f} ms render+build)  {naive_rate:7.1f} msg/s; "
        f"{n:,} would take {n / naive_rate:,.0f} s -> deliver is {ours['rate'] / naive_rate:.0f}x"
    )
    print(
        f"per message: {per_message * 1e6:.0f} us to personalise a variant (2 tokens + fill) "
        f"vs {slow['build_per_message'] * 1e3:.1f} ms to render and build from scratch"
    )
    print(
        f"cpu per message: deliver {ours['cpu_seconds'] / n * 1e6:.0f} us (sink meanwhile "
        f"{sink_ours / n * 1e6:.0f} us); smtp-source {source_cpu / n * 1e6:.0f} us (sink "
        f"meanwhile {sink_source / n * 1e6:.0f} us)"
    )
    if big is not None:
        print(
            f"deliver      {args.big:>7,} msgs  {big['seconds']:6.1f} s  {big['rate']:7.0f} msg/s  "
            f"peak {big['maxrss_mb']:.0f} MB"
        )


if __name__ == "__main__":
    main()
