"""The one place that opens SQLite files, and the two kinds of storage fault.

At start-up (`open_database`) every problem with a file becomes one `DatabaseFault` whose text is a single
line naming the file, what is wrong and what to do; the command line prints it and exits non-zero. A file
that exists but is empty is refused rather than silently treated as a new, empty database: an empty
rooms.sqlite would otherwise start the server with no rooms and overwrite nothing until it was too late.

Schemas change by numbered migrations. Each store declares its list; migration n takes the file from
`PRAGMA user_version` n-1 to n, in one transaction with the version bump, so a failing step leaves the file
at n-1. A file whose version is higher than the list is long was written by newer code and is refused
rather than misread. Migration 1 is the schema the code created before versions were kept, written with
IF NOT EXISTS, so a file of that code (version 0, its tables present, perhaps not all of them) is
completed by it and then carried on like any other.

At run time (`storage_errors`, `transaction`) a failed read or write becomes `StorageFull` (the disk or the
database is full) or `StorageUnavailable` (read-only, I/O error, ...). Callers turn these into protocol
errors (`resource-constraint`/`wait`), never into a traceback that ends a connection. A failed write leaves
the database as it was: each write is a single statement or one transaction.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

MEMORY = ":memory:"

# One schema step: a SQL script, or a function for a step that must look first (e.g. "add this column
# unless an older release already did"); a function only calls `execute`, never commits.
Migration = str | Callable[[sqlite3.Connection], None]


class DatabaseFault(Exception):
    """A database file cannot be used at start-up; str() is one line: `<path>: <what is wrong>; <what to do>`."""

    def __init__(self, path: Path | str, problem: str, remedy: str) -> None:
        super().__init__(f"{path}: {problem}; {remedy}")
        self.path = Path(path)


class StorageError(Exception):
    """A read or write failed at run time; what was stored before is unchanged."""


class StorageFull(StorageError):
    """SQLITE_FULL: the disk (or the database's page limit) is full."""


class StorageUnavailable(StorageError):
    """Any other failure: a read-only file system, an I/O error, a locked or damaged file."""


def storage_error(exc: sqlite3.Error) -> StorageError:
    if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StorageFull(str(exc))
    return StorageUnavailable(str(exc))


# Constraint violations and misuse are our bugs, not storage faults: they stay what they are.
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn sqlite3 faults inside the block (full, read-only, I/O) into StorageFull / StorageUnavailable."""
    try:
        yield
    except _BUGS:
        raise
    except sqlite3.Error as exc:
        raise storage_error(exc) from exc


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on an autocommit connection; rolled back whole when any statement fails."""
    with storage_errors():
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
_NOT_WRITABLE = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH)
_RESTORE = "restore it from a backup, or move it away to start with an empty one"
_FIX_PERMISSIONS = "make it writable for the user running boshcm"


def open_database(path: Path | str, migrations: Sequence[Migration], *,
                  check_same_thread: bool = False) -> sqlite3.Connection:
    """An autocommit connection in WAL mode, migrated to `len(migrations)`, or DatabaseFault (never sqlite3.Error)."""
    if str(path) == MEMORY:
        db = sqlite3.connect(MEMORY, check_same_thread=check_same_thread, isolation_level=None)
        _migrate(db, MEMORY, migrations)
        return db
    path = Path(path)
    _check_file(path)
    try:
        db = sqlite3.connect(str(path), check_same_thread=check_same_thread, isolation_level=None)
    except sqlite3.Error as exc:
        raise _fault(path, exc) from None
    try:
        # Cheap (no index cross-checks), and it reads every page: random bytes, a truncated or otherwise
        # damaged file is refused here rather than failing on some later query.
        problems = [row[0] for row in db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise DatabaseFault(path, f"the database is damaged ({problems[0]})", _RESTORE)
        db.execute("PRAGMA journal_mode=WAL")
        # Every write runs on the event loop: with FULL each commit waits for an fsync of the WAL (0.4 ms here, far
        # more on a busy disk; a 2,000-player quiz archives thousands of messages a minute and stalled the loop for
        # seconds). NORMAL in WAL mode cannot corrupt the file and loses nothing when boshcm itself crashes; only an
        # operating-system crash or power loss may roll back the last commits before a checkpoint (docs/operations.md).
        db.execute("PRAGMA synchronous=NORMAL")
        _migrate(db, path, migrations)
    except sqlite3.Error as exc:
        db.close()
        raise _fault(path, exc) from None
    except DatabaseFault:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: Path | str, migrations: Sequence[Migration]) -> None:
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > len(migrations):
        raise DatabaseFault(path, f"its schema version is {version}, newer than this boshcm knows "
                                  f"({len(migrations)}): a newer release wrote it",
                            "run that release, or restore a backup made for this one")
    for number, migration in enumerate(migrations[version:], start=version + 1):
        if isinstance(migration, str):
            # executescript commits whatever is open first, so the transaction is part of the script; a
            # failing statement stops it with the transaction still open, to be rolled back below.
            script = f"BEGIN IMMEDIATE;\n{migration}\n;PRAGMA user_version = {number};\nCOMMIT;"
            try:
                db.executescript(script)
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                migration(db)
                db.execute(f"PRAGMA user_version = {number}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise


def _check_file(path: Path) -> None:
    directory = path.parent
    if not directory.is_dir():
        raise DatabaseFault(directory, "no such directory", "create it or set server.data_dir")
    try:
        size = path.stat().st_size if path.exists() else None
    except OSError as exc:
        raise DatabaseFault(path, f"cannot read it ({exc.strerror})", _FIX_PERMISSIONS) from None
    if size == 0:
        raise DatabaseFault(path, "the file is empty (0 bytes), so whatever it held is gone",
                            "restore it from a backup, or delete it if starting afresh is intended")
    # SQLite keeps its -wal and -shm files next to the database, so the directory must be writable too.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DatabaseFault(directory, "the data directory is not writable", _FIX_PERMISSIONS)
    if size is not None and not os.access(path, os.R_OK | os.W_OK):
        raise DatabaseFault(path, "the file is not readable and writable", _FIX_PERMISSIONS)


def _fault(path: Path, exc: sqlite3.Error) -> DatabaseFault:
    code = getattr(exc, "sqlite_errorcode", None)
    if code in _DAMAGED:
        return DatabaseFault(path, f"not a usable SQLite database ({exc})", _RESTORE)
    if code == sqlite3.SQLITE_FULL:
        return DatabaseFault(path, "the disk is full", "free some space and start again")
    if code in _NOT_WRITABLE:
        return DatabaseFault(path, f"cannot write to it ({exc})", f"{_FIX_PERMISSIONS}, and its directory")
    return DatabaseFault(path, f"cannot use it ({exc})", "check the file, its directory and the disk")
