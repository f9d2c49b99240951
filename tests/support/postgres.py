"""A throwaway PostgreSQL cluster for the tests: its own folder, a loopback port, gone afterwards.

The cluster belongs to an unprivileged user (PostgreSQL refuses to run as root): the current user,
or `postgres` (made by Debian's package) when the tests run as root. It listens on 127.0.0.1 on a
free port, with its socket in its own folder, and trusts local connections. When PostgreSQL is not
installed or cannot start, the tests that need it fail with what to do; they never skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.smtp_server import free_port

INSTALL_HINT = (
    "install PostgreSQL (`apt-get install postgresql`, or `bash scripts/install-test-deps`)"
)


def _bin_dir() -> Path | None:
    for found in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(found, "initdb").is_file():
            return Path(found)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass(frozen=True)
class Cluster:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self) -> str:
        """Make an empty database; return its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextmanager
def cluster() -> Iterator[Cluster]:
    """Start a cluster for the duration of the block."""
    bindir = _bin_dir()
    if bindir is None:
        pytest.fail(f"PostgreSQL's initdb is missing: {INSTALL_HINT}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("psycopg is missing: `pip install -e '.[test,postgres]'`")
    owner = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    try:
        account = pwd.getpwnam(owner)
    except KeyError:
        pytest.fail(f"the tests run as root and there is no `postgres` user: {INSTALL_HINT}")
    folder = Path(tempfile.mkdtemp(prefix="newsletter-pg-"))
    os.chown(folder, account.pw_uid, account.pw_gid)
    data, log = folder / "data", folder / "server.log"
    port = free_port()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", owner, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    try:
        made = run("initdb", "-D", str(data), "-U", owner, "-A", "trust", "-E", "UTF8")
        if made.returncode != 0:
            pytest.fail(f"initdb failed: {made.stderr.strip()[-500:]}")
        options = f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder} -c fsync=off"
        started = run("pg_ctl", "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
        if started.returncode != 0:
            detail = log.read_text(errors="replace")[-800:] if log.exists() else started.stderr
            pytest.fail(f"PostgreSQL did not start: {detail.strip()}")
        try:
            yield Cluster("127.0.0.1", port, owner)
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
