"""OS-level locks on the state: one scheduler per state, one send at a time.

`flock` on a file beside the SQLite database (or named after the database URL): the kernel drops
the lock when its process dies, so a crash never leaves a stale lock behind. Two hosts sharing a
PostgreSQL state are not covered by a local file lock; run one sender per state.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import BusyError

if TYPE_CHECKING:
    from newsletter.config import Config

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # how often a waiting scheduler tries the send lock again


def lock_path(config: Config, purpose: str) -> Path:
    """The lock file of `purpose` ("schedule", "send") for the config's state."""
    state = str(config.state)
    if "://" not in state:
        return Path(f"{config.resolve(state)}.{purpose}.lock")
    digest = hashlib.sha1(state.encode()).hexdigest()[:12]
    return config.base_dir / f".newsletter-{digest}.{purpose}.lock"


@contextmanager
def exclusive(path: Path, busy: str, *, wait: threading.Event | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path`, or raise `busy` (with `{pid}`, `{path}`) at once.

    With `wait`, keep trying every few seconds instead, until the lock is free or `wait` is set.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                message = busy.format(pid=holder, path=path)
                if wait is None or wait.is_set():
                    raise BusyError(message) from None
                if not announced:
                    log.warning("%s; waiting for it", message)
                    announced = True
                wait.wait(RETRY_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def scheduler_lock(path: Path) -> AbstractContextManager[None]:
    """Only one `newsletter schedule` may drive one state."""
    return exclusive(
        path,
        "another `newsletter schedule` (pid {pid}) already drives this state (lock {path}); "
        "stop it first, or use another `state:`",
    )


def send_lock(
    config: Config, *, wait: threading.Event | None = None
) -> AbstractContextManager[None]:
    """Only one send at a time per state: two overlapping runs would both see rows pending.

    `wait` (the scheduler's stop event) waits for the other send to end instead of refusing.
    """
    return exclusive(
        lock_path(config, "send"),
        "another send (pid {pid}) is working on this state (lock {path}); wait for it to "
        "finish, then run again to send whatever is left",
        wait=wait,
    )
