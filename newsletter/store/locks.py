"""Locks on the state: one scheduler per config folder, one send at a time on SQLite, and on
PostgreSQL one builder per issue across hosts.

`flock` on a file beside the SQLite database (or named after the database URL): the kernel drops
the lock when its process dies, so a crash never leaves a stale lock behind. A SQLite state takes
one sender at a time; a PostgreSQL state takes any number, on any number of hosts, which share
the rows (`newsletter.store.claims`), so no send lock is taken there. What they must not do twice
is build and archive the week's issue: `issue_lock` is a PostgreSQL advisory lock, held by one
transaction while its process checks the archive and, if the issue is not there, builds it; the
others wait, then find it archived. The database drops it when the holder's connection ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from newsletter.errors import BusyError
from newsletter.store.database import advisory_key, db_message, state_folder, state_url

if TYPE_CHECKING:
    from newsletter.config.stages import StateSettings
    from newsletter.store.state import Store

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0  # how often a waiting scheduler tries the send lock again


def lock_path(settings: StateSettings, purpose: str) -> Path:
    """The lock file of `purpose` ("schedule", "send") for the config's state."""
    state_folder(settings)  # the lock sits beside the state: its folder must exist first
    state = settings.state
    if "://" not in state:
        return Path(f"{settings.resolve(state)}.{purpose}.lock")
    digest = hashlib.sha1(state.encode()).hexdigest()[:12]
    return settings.base_dir / f".newsletter-{digest}.{purpose}.lock"


@contextmanager
def exclusive(path: Path, busy: str, *, wait: threading.Event | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path`, or raise `busy` (with `{pid}`, `{path}`) at once.

    With `wait`, keep trying every few seconds instead, until the lock is free or `wait` is set.
    """
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
    settings: StateSettings, *, wait: threading.Event | None = None
) -> AbstractContextManager[None]:
    """Only one send at a time on a SQLite state (a PostgreSQL state shares its rows instead).

    `wait` (the scheduler's stop event) waits for the other send to end instead of refusing.
    """
    if state_url(settings).get_backend_name() != "sqlite":
        return nullcontext()
    return exclusive(
        lock_path(settings, "send"),
        "another send (pid {pid}) is working on this state (lock {path}); wait for it to "
        "finish, then run again to send whatever is left (a SQLite state takes one sender at "
        "a time; several hosts sending together need a PostgreSQL state)",
        wait=wait,
    )


@contextmanager
def issue_lock(store: Store, issue_id: str) -> Iterator[None]:
    """On PostgreSQL, hold the issue's advisory lock for the block (waiting for it if another
    process holds it); on SQLite nothing (its send lock keeps other runs out already)."""
    if store.db.dialect != "postgresql":
        yield
        return
    key = {"k": advisory_key("issue", issue_id)}
    # a session's lock in autocommit: no transaction stays open while the issue is built (a
    # server's idle_in_transaction_session_timeout would end it, and the lock with it)
    try:
        conn = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    except sa.exc.SQLAlchemyError as e:
        raise store.db.error(e) from e
    with conn:
        try:
            if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), key).scalar():
                log.info("issue %s: another sender is preparing it; waiting", issue_id)
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
        except sa.exc.SQLAlchemyError as e:
            raise store.db.error(e) from e
        try:
            yield
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
            except sa.exc.SQLAlchemyError as e:  # the session's end releases it: end it
                log.warning("issue %s: could not release its lock: %s", issue_id, db_message(e))
                conn.invalidate()
