"""The state database connection: URLs and paths, transactions, SQLite tuning, readable errors."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from newsletter.errors import StoreError

if TYPE_CHECKING:
    from newsletter.config.stages import StateSettings

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000


class Database:
    """One SQLAlchemy engine with the transactions every part of the store uses."""

    def __init__(self, engine: sa.Engine, label: str, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.label = label  # how errors name the database (never with a password)
        self.clock = clock
        self.dialect = engine.dialect.name
        # the stored form of a timestamp, as the column type binds it (UTC; SQLite's text)
        self._stamp: Callable[[datetime], Any] = _sqlite_stamp if self.dialect == "sqlite" else _utc

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE, so it waits for the lock up front)."""
        try:
            with self.engine.connect() as conn:
                conn.execution_options(newsletter_write=True)
                with conn.begin():
                    yield conn
        except sa.exc.SQLAlchemyError as e:
            raise self.error(e) from e

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection for reads (each statement sees the latest commits)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as e:
            raise self.error(e) from e

    @contextmanager
    def raw(self) -> Iterator[Any]:
        """One write transaction on the driver's own connection, for the statements a send runs
        thousands of times (SQLAlchemy's work per statement is most of their cost there).

        Statements use `%s` placeholders (`sql()` turns them into SQLite's); `stamp()` makes a
        timestamp parameter. SQLite starts with BEGIN IMMEDIATE, as `write()` does.
        """
        try:
            raw = self.engine.raw_connection()
        except sa.exc.SQLAlchemyError as e:
            raise self.error(e) from e
        conn: Any = raw.driver_connection
        try:
            if self.dialect == "sqlite":
                conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.commit() if self.dialect != "sqlite" else conn.execute("COMMIT")
        except BaseException as e:
            with suppress(Exception):
                conn.rollback()
            if isinstance(e, Exception) and (
                isinstance(e, sa.exc.SQLAlchemyError) or _driver_error(e)
            ):
                raise self.error(e) from e
            raise
        finally:
            raw.close()

    def error(self, e: Exception) -> StoreError:
        """The error to raise for a failure of this database: its name, the driver's line."""
        return StoreError(f"{self.label}: {db_message(e)}")

    def sql(self, text: str) -> str:
        """A statement written with `%s` placeholders, as this database's driver takes it."""
        return text.replace("%s", "?") if self.dialect == "sqlite" else text

    def stamp(self, moment: datetime) -> Any:
        """A timestamp as the driver takes it for a `UTCDateTime` column (SQLite: its text)."""
        return self._stamp(moment)

    def insert_ignore(self, table: sa.Table) -> Any:
        """An INSERT that skips rows whose key is already there (both backends say it alike)."""
        if self.dialect == "postgresql":
            # loaded here, not at the top: 40 ms that a SQLite state never needs
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    def close(self) -> None:
        self.engine.dispose()


def state_url(settings: StateSettings) -> sa.URL:
    """Turn `state:` into a database URL; a relative SQLite path is the config's."""
    value = settings.state.strip()
    if "://" not in value:
        return sa.URL.create("sqlite", database=str(settings.resolve(value)))
    try:
        url = sa.make_url(value)
    except sa.exc.ArgumentError as e:
        where = settings.config_name
        raise StoreError(f"{where}: state: '{value}' is not a database URL or a path") from e
    db = url.database
    if (
        url.get_backend_name() == "sqlite"
        and db
        and db != ":memory:"
        and not Path(db).is_absolute()
    ):
        url = url.set(database=str(settings.resolve(db)))
    return url


def state_folder(settings: StateSettings) -> None:
    """Make sure the folder of a SQLite state exists: the default state's folder is made, a
    configured one must exist (a typo in `state:` must not create folders anywhere)."""
    url = state_url(settings)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    folder = Path(str(url.database)).parent
    if folder.is_dir():
        return
    if not settings.configured:
        folder.mkdir(parents=True, exist_ok=True)
        return
    raise StoreError(
        f"{settings.config_name}: state: the folder {folder} does not exist; create the folder "
        f"(mkdir -p {folder}) or set `state:` to a file in an existing folder"
    )


def url_and_label(target: str | Path | sa.URL) -> tuple[sa.URL, str]:
    """Return the URL to open and how messages name it (a path, or the URL without password)."""
    if isinstance(target, sa.URL):
        url = target
    elif isinstance(target, Path) or "://" not in target:
        path = Path(target).expanduser().resolve()
        return sa.URL.create("sqlite", database=str(path)), str(path)
    else:
        try:
            url = sa.make_url(target)
        except sa.exc.ArgumentError as e:
            raise StoreError("state: not a database URL or a path") from e
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return url, str(url.database)
    return url, url.render_as_string(hide_password=True)


def tune_sqlite(engine: sa.Engine) -> None:
    """WAL (readers never block the writer), NORMAL sync, a busy wait; we issue BEGIN ourselves."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # let SQLAlchemy's BEGIN below be the only one (pysqlite's own is deferred and late)
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # a write that starts deferred and upgrades later can fail at once with SQLITE_BUSY
        # when another process wrote in between; IMMEDIATE waits for the lock instead
        write = conn.get_execution_options().get("newsletter_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the state store; pass an aware one")
    return moment.astimezone(timezone.utc)


def _sqlite_stamp(moment: datetime) -> str:
    """The text `UTCDateTime` stores in SQLite (`2026-01-02 03:04:05.000006`), made by
    `isoformat` in C: SQLAlchemy's own formatting was a tenth of a mark's time."""
    return _utc(moment).replace(tzinfo=None).isoformat(" ", "microseconds")


def advisory_key(purpose: str, issue_id: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit number) for one purpose and issue."""
    digest = hashlib.blake2b(f"newsletter.{purpose}:{issue_id}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def _driver_error(e: BaseException) -> bool:
    """True for an error the database driver raised (sqlite3's or psycopg's)."""
    return type(e).__module__.split(".")[0] in ("sqlite3", "psycopg", "psycopg2")


_HINTS = {
    "locked": "another newsletter process holds the database; try again",
    "busy": "another newsletter process holds the database; try again",
    "unable to open": "check that the folder exists and is writable",
    "readonly": "the file is read-only; check its permissions",
    "not a database": "this file is not a SQLite database; point `state:` at another path",
}


def db_message(e: Exception) -> str:
    """The driver's first line (never the URL or a password) plus the likely fix.

    `e` is SQLAlchemy's error (its `orig` is the driver's) or the driver's own.
    """
    orig = getattr(e, "orig", None)
    text = (str(orig if orig is not None else e).strip().splitlines() or [type(e).__name__])[0]
    hint = next((fix for key, fix in _HINTS.items() if key in text), None)
    return f"{text} ({hint})" if hint else text
