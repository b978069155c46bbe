"""A store from an older schema version is migrated, with a backup copy first (issue 6).

The old stores are real: the schema is written by the first N migrations the released
versions ran, and their rows come from a real apply (mirror and taxonomy) by the CLI.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from sqlite_utils import Database

from reconciler.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.conftest import Workspace, core_mirror
from tests.gitservers import seed_bare
from tests.reliability.report import record

# Tables whose rows an apply writes, by the schema version that introduced them.
DATA_TABLES = {"revisions": 1, "journal": 1, "resources": 1, "history": 1, "events": 1}
DATA_TABLES["versions"] = 2


def _applied_store(ws: Workspace, version: int) -> Path:
    """A current store holding a real apply of what a version-`version` store could hold:
    mirrors, and from v2 on (content versions) a taxonomy."""
    core_mirror(ws, branches=("main", "dev"), tags=("v1",))
    if version >= 2:
        docs = ws.root / "docs.git"
        seed_bare(docs)  # a main branch to write on
        ws.write_spec(
            "taxonomy.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: Taxonomy
            metadata: {{name: docs}}
            spec:
              terms:
                - {{id: infra, label: Infrastructure}}
              targets:
                - {{repo: {docs}, branch: main, path: taxonomy.json}}
            """,
        )
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    return ws.state


def _old_store(current: Path, target: Path, version: int) -> None:
    """Write a store at schema `version` with the rows `current` holds in its tables."""
    database = Database(target)
    for migration in MIGRATIONS[:version]:
        migration(database)
    database.conn.close()
    with closing(sqlite3.connect(target)) as db:
        db.execute("ATTACH DATABASE ? AS current", (str(current),))
        for table, since in DATA_TABLES.items():
            if since <= version:
                db.execute(f"INSERT INTO {table} SELECT * FROM current.{table}")
        db.execute("INSERT INTO meta SELECT * FROM current.meta")
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        db.commit()
        db.execute("DETACH DATABASE current")
        db.execute("PRAGMA journal_mode=WAL")  # as reconciler keeps it


def _rows(path: Path, version: int) -> dict[str, list[tuple[object, ...]]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {
            table: db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
            for table, since in DATA_TABLES.items()
            if since <= version
        }


def _schema_version(path: Path) -> int:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_an_older_store_is_backed_up_then_migrated_keeping_its_data(
    ws: Workspace, version: int
) -> None:
    started = time.monotonic()
    current = _applied_store(ws, version)
    old = ws.root / "old" / "reconciler.db"
    old.parent.mkdir()
    _old_store(current, old, version)
    before = _rows(old, version)
    assert before["revisions"] and before["resources"]
    assert version < 2 or before["versions"]

    plan = ws.run("--state", str(old), "plan", "--detailed-exitcode")

    assert plan.code == 0, plan.output  # the old records still describe the world: no changes
    backup = old.with_name(f"reconciler.db.v{version}.bak")
    note = f"note: migrated the state store from schema v{version} to v{SCHEMA_VERSION}; "
    assert plan.stderr.count(note) == 1, plan.stderr
    assert f"the old store is kept as {backup}" in plan.stderr
    assert _schema_version(old) == SCHEMA_VERSION
    after = _rows(old, version)
    # Every old row kept as it was; the one new row is the migration's event.
    assert {t: rows[: len(before[t])] for t, rows in after.items()} == before
    assert [len(after[t]) - len(before[t]) for t in before] == [int(t == "events") for t in before]
    assert str(backup) in str(after["events"][-1])
    assert _schema_version(backup) == version
    assert _rows(backup, version) == before
    assert not Path(f"{backup}-wal").exists()  # the backup is one self-contained file
    # Opened again, the store is current: no second note, the backup stays as it was.
    copied = backup.read_bytes()
    history = ws.run("--state", str(old), "history")
    assert history.code == 0 and "note:" not in history.stderr, history.output
    assert len([ln for ln in history.stdout.splitlines() if " apply " in ln]) == len(
        before["revisions"]
    )
    assert backup.read_bytes() == copied
    record(
        f"migration: schema v{version} -> v{SCHEMA_VERSION}",
        time.monotonic() - started,
        stores_migrated=1,
        rows_kept=sum(map(len, before.values())),
        backup_holds_old_version=1,
    )


def test_no_migration_without_a_backup(ws: Workspace) -> None:
    current = _applied_store(ws, 1)
    old = ws.root / "old" / "reconciler.db"
    old.parent.mkdir()
    _old_store(current, old, 1)
    before = _rows(old, 1)
    # Something in the backup's way (here a directory) makes the backup fail.
    (old.parent / "reconciler.db.v1.bak").mkdir()

    plan = ws.run("--state", str(old), "plan")

    assert plan.code == 1
    assert "Traceback" not in plan.output
    line = plan.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {old}.v1.bak: cannot back up the store"), plan.stderr
    assert _schema_version(old) == 1  # untouched: still the old version, with its data
    assert _rows(old, 1) == before
    assert not list(old.parent.glob("*.partial"))
