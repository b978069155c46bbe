"""The SQLite state store: one file, WAL mode, a serial bumped by every change of state.

Only this package writes SQL. Writes that belong together run in one `transaction()`
(BEGIN IMMEDIATE), so a crash leaves either all of them or none.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reconciler.errors import StoreError
from reconciler.store.clock import now
from reconciler.store.schema import MIGRATIONS, SCHEMA_VERSION


class StoreDatabase:
    """Connection, transactions, schema migrations and the serial."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        """Open the store at `path`, creating a new one only where no file exists.

        `read_only` opens it without writing (commands that only read work on a
        read-only mount); an older schema is still migrated first when the file allows.
        """
        self.path = path
        self.read_only = read_only
        # One connection shared by the engine's threads: every statement and transaction
        # holds this lock, so threads never interleave inside SQLite.
        self._guard = threading.RLock()
        try:
            if not path.exists():
                self._create()
            _refuse_foreign_file(path)
            if read_only:
                self.connection = self._connect_read_only()
                if self.schema_version() < SCHEMA_VERSION:  # migrate (and back up) first
                    self.connection.close()
                    StoreDatabase(path).close()
                    self.connection = self._connect_read_only()
                self._check_version()
                return
            self.connection = self._connect(path)
            self._check_version()  # before the pragmas: a foreign file is left as it is
            self._configure()
            self._migrate()
        except OSError as error:
            raise StoreError(f"{path}: cannot open the state store: {error}") from None
        except sqlite3.OperationalError as error:  # the file system, not the file
            raise StoreError(f"{path}: cannot open the state store: {error}{self._why()}") from None
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{path}: not a usable reconciler state store: {error}") from None

    @staticmethod
    def _connect(target: Path | str, uri: bool = False) -> sqlite3.Connection:
        connection = sqlite3.connect(
            target, timeout=10, isolation_level=None, check_same_thread=False, uri=uri
        )
        connection.row_factory = sqlite3.Row
        return connection

    def _configure(self) -> None:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.connection.execute(f"PRAGMA {pragma}")

    def _create(self) -> None:
        """A new store, built aside and linked into place: a store path is either absent
        or a whole store, so an empty or foreign file there is never taken for a new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        aside = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        aside.unlink(missing_ok=True)
        try:
            self.connection = self._connect(aside)
            try:
                self._configure()
                self._migrate()
            finally:
                self.connection.close()
            try:
                os.link(aside, self.path)
            except FileExistsError:  # another process created it meanwhile: theirs stays
                pass
            except OSError:  # no hard links on this file system: rename, if still absent
                if not self.path.exists():
                    aside.replace(self.path)
        finally:
            aside.unlink(missing_ok=True)

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that never writes. WAL needs its -shm file; where it cannot be
        created (a read-only directory) and no -wal is left, the file is complete and is
        read as immutable."""
        address = f"file:{quote(str(self.path.absolute()))}"
        connection = self._connect(f"{address}?mode=ro", uri=True)
        try:
            connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return connection
        except sqlite3.OperationalError:
            connection.close()
            if Path(f"{self.path}-wal").exists():
                raise
        return self._connect(f"{address}?immutable=1", uri=True)

    def _check_version(self) -> None:
        """Refuse a SQLite file that is not reconciler's, or is from a newer reconciler."""
        version = self.schema_version()
        if version == 0:
            tables = [
                row["name"]
                for row in self.query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            what = f"its tables are {', '.join(tables[:5])}" if tables else "it has no tables"
            raise StoreError(
                f"{self.path}: not a reconciler state store: a SQLite database without "
                f"reconciler's schema ({what}); point --state elsewhere, or remove it to start "
                "a new store"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this reconciler "
                f"understands ({SCHEMA_VERSION}); upgrade reconciler"
            )

    def _why(self) -> str:
        """What the file system says, when SQLite's own words ("disk I/O error") are vague."""
        try:
            stats = os.statvfs(self.path.parent)
        except OSError:
            return ""
        if stats.f_flag & os.ST_RDONLY:
            return f" ({self.path.parent} is on a read-only file system)"
        if stats.f_bavail * stats.f_frsize < 1 << 20:
            return f" (the file system of {self.path.parent} is full)"
        return ""

    def _run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """One statement; a failing file system (full, read-only, I/O) becomes a StoreError
        naming the store, never a traceback. SQLite leaves the file intact in those cases."""
        try:
            return self.connection.execute(sql, params)
        except sqlite3.OperationalError as error:
            raise StoreError(
                f"{self.path}: cannot write the state store: {error}{self._why()}"
            ) from None

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with self._guard:
            self._run("BEGIN IMMEDIATE")
            try:
                yield
                self._run("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full) may have rolled back already.
                if self.connection.in_transaction:
                    with suppress(sqlite3.Error):
                        self.connection.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """Run one statement."""
        with self._guard:
            return self._run(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts."""
        with self._guard:
            return [dict(row) for row in self._run(sql, params)]

    def schema_version(self) -> int:
        """The migration level of this file (0 for a new file)."""
        tables = self.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'")
        if not tables:
            return 0
        rows = self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0]["value"]) if rows else 0

    def backup_path(self, version: int) -> Path:
        """Where the copy of a version-`version` store goes before it is migrated."""
        return self.path.with_name(f"{self.path.name}.v{version}.bak")

    def _backup(self, version: int) -> Path:
        """Copy the whole store (WAL content included) with SQLite's backup API, atomically:
        a migration must never be the only copy of the old data."""
        target = self.backup_path(version)
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        try:
            copy = sqlite3.connect(partial, isolation_level=None)
            try:
                with self._guard:
                    self.connection.backup(copy)
                # One self-contained file: no -wal/-shm beside the backup.
                copy.execute("PRAGMA journal_mode=DELETE")
                copied = copy.execute("SELECT value FROM meta WHERE key = 'schema_version'")
                current = int(copied.fetchone()[0]) == version
            finally:
                copy.close()
            if current:
                partial.replace(target)
            else:  # another process migrated meanwhile (and kept the old store itself)
                partial.unlink()
        except (OSError, sqlite3.Error) as error:
            partial.unlink(missing_ok=True)
            raise StoreError(
                f"{target}: cannot back up the store before migrating it: {error}"
            ) from None
        return target

    def _migrate(self) -> None:
        found = self.schema_version()
        backup = None
        if 0 < found < SCHEMA_VERSION:
            backup = self._backup(found)
        with self.transaction():
            version = self.schema_version()
            if version > SCHEMA_VERSION:  # migrated meanwhile by a newer reconciler
                self._check_version()
            if version < SCHEMA_VERSION:
                # sqlite-utils writes the schema; imported only when there is one to write.
                from sqlite_utils import Database

                database = Database(self.connection)
                for migration in MIGRATIONS[version:]:
                    migration(database)
            if version < SCHEMA_VERSION:
                self._set_meta("schema_version", str(SCHEMA_VERSION))
                if version == 0:
                    self._set_meta("serial", "0")
            if 0 < version < SCHEMA_VERSION:
                self._note_migration(version, backup)

    def _note_migration(self, version: int, backup: Path | None) -> None:
        note = (
            f"migrated the state store from schema v{version} to v{SCHEMA_VERSION}; "
            f"the old store is kept as {backup}"
        )
        self.execute(
            "INSERT INTO events(at, level, address, message) VALUES (?, ?, NULL, ?)",
            (now(), "warning", note),
        )
        # Said once on stderr, whatever command opened the store (a cron job's log keeps
        # it); the event keeps it in the store too.
        print(f"note: {note}", file=sys.stderr)

    def _set_meta(self, key: str, value: str) -> None:
        self.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def serial(self) -> int:
        """The number of state changes ever committed to this store."""
        rows = self.query("SELECT value FROM meta WHERE key = 'serial'")
        return int(rows[0]["value"])

    def bump_serial(self) -> int:
        """Count one more change of state (call inside the transaction that changes it)."""
        self.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'serial'")
        return self.serial()


def _refuse_foreign_file(path: Path) -> None:
    """An existing file must be a SQLite database: an empty or foreign one would otherwise
    be taken for a new store and its history silently lost."""
    with path.open("rb") as file:
        header = file.read(16)
    if not header:
        raise StoreError(
            f"{path}: not a usable reconciler state store: the file is empty (0 bytes), "
            "so whatever history it held is lost; restore it from a backup, or remove it "
            "to start a new store"
        )
    if header != b"SQLite format 3\x00":
        raise StoreError(
            f"{path}: not a usable reconciler state store: the file is not a SQLite "
            "database; point --state elsewhere, or move it away to start a new store"
        )


def canonical_digest(data: Any) -> str:
    """`sha256:` of canonical JSON (the same content always gives the same digest)."""
    return "sha256:" + hashlib.sha256(dumps(data).encode()).hexdigest()


def dumps(data: Any) -> str:
    """JSON for a column: sorted keys, compact."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """The inverse of dumps; None stays None."""
    return None if text is None else json.loads(text)
