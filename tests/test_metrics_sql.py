"""`metrics` from SQL aggregates (issue 14): the same figures as computing them in Python
from every journal row, read from an index without the journal's rows."""

from __future__ import annotations

import json
import math
import sqlite3
import statistics
from contextlib import closing
from pathlib import Path
from typing import Any

from reconciler.store import ResourceRecord, Store, parse_stamp
from reconciler.store.schema import JOURNAL_MILLISECONDS
from tests.conftest import Workspace, core_mirror, ok
from tests.gitservers import WorkRepo

# Durations in ms that put means and p95s on rounding edges (x.xxx5 s), and a clock that
# went backwards (counted as 0).
EDGES = [12, 13, 0, 1, 1, 2, 999, 1000, 1001, 2500, 3, -40]


def reference(path: Path, activity: dict[str, str]) -> dict[str, Any]:
    """The sync and deploy figures as `metrics` computed them before issue 14: every
    finished journal row loaded, durations from parsed stamps, statistics.fmean, p95."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT address, status, started_at, finished_at FROM journal "
            "WHERE status IN ('done', 'failed') AND started_at IS NOT NULL"
        ).fetchall()
    found: dict[str, Any] = {}
    for name in ("sync", "deploy"):
        mine = [r for r in rows if activity.get(r[0].partition("/")[0]) == name]
        seconds = [max(0.0, (parse_stamp(r[3]) - parse_stamp(r[2])).total_seconds()) for r in mine]
        ordered = sorted(seconds)
        ok_count = sum(1 for r in mine if r[1] == "done")
        found[name] = {
            "total": len(mine),
            "success_rate": round(ok_count / len(mine), 4) if mine else None,
            "mean_seconds": round(statistics.fmean(seconds), 3) if seconds else None,
            "p95_seconds": round(ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)], 3)
            if seconds
            else None,
        }
    return found


def _edges(path: Path) -> None:
    """Journal rows of a deploy kind, an unknown kind and more syncs, through the store's
    API, then given the durations of EDGES."""
    store = Store(path)
    for number, ms in enumerate(EDGES * 3):
        address = ("Environment/web", "Mirror/core", "Gadget/x")[number % 3]
        revision = store.begin_revision("apply", "specs", None, "sha256:x")
        entry = store.journal_add(revision, address, "u", [{"op": "x"}])
        store.journal_start(entry)
        record = ResourceRecord(
            address, address.split("/")[0], "n", {}, "d", {}, revision, None, "done", "", None
        )
        status = "failed" if number % 7 == 0 else "done"
        store.record_result(entry, status, 1, "", {}, record if number % 3 == 1 else None, [])
        store.finish_revision(revision, "success", {})
        store.execute(
            "UPDATE journal SET started_at = '2026-12-04T10:00:00.500Z', "
            "finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', '2026-12-04T10:00:00.500', "
            "? || ' seconds') "
            "WHERE id = ?",
            (f"{ms / 1000:.3f}", entry),
        )
    store.close()


def test_metrics_json_equals_the_python_computation_over_every_row(ws: Workspace) -> None:
    source = core_mirror(ws)
    work = WorkRepo.create(ws.root / "work", source)
    for number in range(3):  # three real applies, each moving main
        ok(ws.run("apply", "--yes"))
        work.commit(f"change {number}", {"file.txt": f"{number}\n"})
        work.push(source, "main:main")
    ok(ws.run("apply", "--yes"))
    _edges(ws.state)

    metrics = json.loads(ok(ws.run("metrics", "--format", "json")).stdout)

    expected = reference(ws.state, {"Mirror": "sync", "Environment": "deploy"})
    assert {k: metrics[k] for k in ("sync", "deploy")} == expected
    assert metrics["sync"]["total"] == 4 + len(EDGES)  # the unknown kind counts nowhere
    assert metrics["deploy"]["total"] == len(EDGES)


def test_durations_are_read_from_the_index_not_the_journal_rows(ws: Workspace) -> None:
    Store(ws.state).close()
    with closing(sqlite3.connect(ws.state)) as db:
        plan = db.execute(
            f"EXPLAIN QUERY PLAN SELECT address, status, {JOURNAL_MILLISECONDS} AS ms, "
            "COUNT(*) AS n FROM journal WHERE status IN ('done', 'failed') AND ms IS NOT NULL "
            "GROUP BY status, address, ms"
        ).fetchall()
    assert "USING COVERING INDEX journal_durations" in str(plan), plan
