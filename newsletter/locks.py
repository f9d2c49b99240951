"""OS-level locks on the state: one scheduler per state, one send at a time.

`flock` on a file beside the SQLite database (or named after the database URL): the kernel drops
the lock when its process dies, so a crash never leaves a stale lock behind. Two hosts sharing a
PostgreSQL state are not covered by a local file lock; run one sender per state.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from newsletter.errors import NewsletterError

if TYPE_CHECKING:
    from newsletter.config import Config


def lock_path(config: Config, purpose: str) -> Path:
    """The lock file of `purpose` ("schedule", "send") for the config's state."""
    state = str(config.state)
    if "://" not in state:
        return Path(f"{config.resolve(state)}.{purpose}.lock")
    digest = hashlib.sha1(state.encode()).hexdigest()[:12]
    return config.base_dir / f".newsletter-{digest}.{purpose}.lock"


@contextmanager
def exclusive(path: Path, busy: str) -> Iterator[None]:
    """Hold an exclusive lock on `path`, or raise `busy` (with `{pid}`, `{path}`) at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise NewsletterError(busy.format(pid=holder, path=path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def scheduler_lock(path: Path) -> Iterator[None]:
    """Only one `newsletter schedule` may drive one state."""
    return exclusive(
        path,
        "another `newsletter schedule` (pid {pid}) already drives this state (lock {path}); "
        "stop it first, or use another `state:`",
    )


def send_lock(config: Config) -> Iterator[None]:
    """Only one send at a time per state: two overlapping runs would both see rows pending."""
    return exclusive(
        lock_path(config, "send"),
        "another send (pid {pid}) is working on this state (lock {path}); wait for it to "
        "finish, then run again to send whatever is left",
    )
