"""Opening the database: the SQLite file checked before SQLite touches it, connection pragmas, write locks.

SQLite takes any file it is given: a 0-byte file becomes an empty database (a truncated copy of a store would
reopen as a new, empty store and hide the loss), and a file that is not a database fails only at the first
query, with a driver error that names no file. So a store file is checked first: it must be absent (a new
store, created 0600), or start with SQLite's header. Damage found later is turned into a StoreError naming
the file and the fix by `database_error`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, NoSuchModuleError, OperationalError

from engine.paths import PRIVATE_FILE_MODE, private_dir
from engine.store.schema import StoreError

BUSY_TIMEOUT_MS = 5000
SQLITE_HEADER = b"SQLite format 3\x00"
WRITE_OPTION = "oncolens_write"  # execution option marking connections that will write
PG_WRITE_LOCK = 0x0C0_1E26  # advisory lock id: one writer at a time, as SQLite's BEGIN IMMEDIATE gives
_DAMAGE_WORDS = ("not a database", "malformed", "file is encrypted", "disk image")


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory ones."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    if url.database.startswith("file:"):
        return None  # a URI filename: SQLite itself handles it (tests and experts only)
    return Path(url.database).expanduser()


def check_sqlite_file(path: Path, *, read_only: bool) -> None:
    """Refuse a file SQLite would misread; create a new store's file readable by its owner only."""
    if not path.exists():
        if read_only:
            raise StoreError(f"There is no store at {path}; nothing to read. Check --db (or the db_url setting "
                             "and ONCOLENS_DB_URL).")
        _create_store_file(path)
        return
    if not path.is_file():
        raise StoreError(f"The store {path} is not a file. Point --db (or db_url) at the store's file.")
    if path.stat().st_size == 0:
        raise StoreError(
            f"The store file {path} is empty (0 bytes): it is not a store OncoLens wrote, or a copy of one that was "
            "cut off. OncoLens will not start an empty store in its place. Restore the file from a backup, or "
            "delete it to start a new, empty store.")
    if path.stat().st_size:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
        if header != SQLITE_HEADER:
            raise StoreError(
                f"The store file {path} is not an SQLite database (it does not start with SQLite's header). "
                "Point --db (or db_url) at the store's file, or restore it from a backup.")


def _create_store_file(path: Path) -> None:
    """A new, empty SQLite database at `path`, mode 0600 (SQLite gives its -wal and -shm files the mode of the
    database file). It is made under another name and linked into place whole, so that no other process ever
    sees it at 0 bytes, which would be refused above."""
    private_dir(path.parent)
    making = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.new")
    os.close(os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    try:
        connection = sqlite3.connect(making)
        try:
            connection.execute("PRAGMA journal_mode=WAL")  # writes the header and first page
        finally:
            connection.close()
        try:
            os.link(making, path)
        except FileExistsError:
            pass  # another process made the store at the same moment: use theirs
    finally:
        for leftover in (making, Path(f"{making}-wal"), Path(f"{making}-shm")):
            leftover.unlink(missing_ok=True)


def database_error(exc: DatabaseError, shown_url: str) -> StoreError:
    """A driver error as a StoreError that names the database and the fix."""
    text = str(exc.orig)
    if any(word in text.lower() for word in _DAMAGE_WORDS):
        return StoreError(
            f"The store {shown_url} is damaged or not a database ({text}). Nothing was changed. Restore it from "
            "a backup; `oncolens store verify` lists what is wrong.")
    if isinstance(exc, OperationalError):
        return StoreError(f"Database {shown_url} failed: {text}. If another program holds it locked, close that "
                          "program and try again.")
    return StoreError(f"Database {shown_url} refused the change: {text}.")


def _enable_wal(cursor: Any) -> None:
    """Switch to WAL. When several processes open a new file at once, this switch can fail with
    "database is locked" without waiting for busy_timeout, so it is retried here up to that long."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # the driver's OperationalError; its class depends on the driver
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_connect_listener(read_only: bool):
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver must not open transactions by itself: _sqlite_on_begin emits BEGIN instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # Each commit reaches the disk before it returns (FULL is SQLite's default; said here, so that a
            # build with another default cannot lose an acknowledged answer to a power cut).
            cursor.execute("PRAGMA synchronous=FULL")
            # REPLACE deletes the row it replaces; with this on, that delete runs the delete triggers too.
            cursor.execute("PRAGMA recursive_triggers=ON")
            # Deleted rows are overwritten with zeros, so a deleted case's patient id does not stay readable
            # in the file's free pages.
            cursor.execute("PRAGMA secure_delete=ON")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")  # switching to WAL would write: a read-only store leaves it
            else:
                _enable_wal(cursor)
        finally:
            cursor.close()
    return on_connect


def _postgresql_read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    finally:
        cursor.close()
    dbapi_connection.commit()


def _sqlite_on_begin(connection: Connection) -> None:
    # A writer takes the write lock up front (IMMEDIATE) and so waits its turn under busy_timeout;
    # a deferred transaction that reads and then writes would instead fail at once with
    # "database is locked" when another process wrote in between.
    writes = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN DEFERRED")


def take_write_lock(connection: Connection) -> None:
    """On PostgreSQL, one writing transaction at a time (held to its end), as SQLite's BEGIN IMMEDIATE gives:
    the audit chain needs each event to see the one written before it. Taken first, so it cannot deadlock."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"Database URL {url!r} is not valid ({exc}). Fix the db_url setting or ONCOLENS_DB_URL.") from exc
    shown = parsed.render_as_string(hide_password=True)
    path = sqlite_path(parsed)
    if path is not None:
        check_sqlite_file(path, read_only=read_only)
    try:
        engine = create_engine(parsed)
    except (NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"Cannot open database {shown}: its driver is not installed ({exc}). "
            "Install it (for PostgreSQL: pip install 'psycopg[binary]') or change db_url."
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_connect_listener(read_only))
        event.listen(engine, "begin", _sqlite_on_begin)
    elif read_only and parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _postgresql_read_only)
    return engine
