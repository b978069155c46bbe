"""store_scale: the state store after 200,000 applies: `metrics` and `state prune`.

The store is built once: two real applies of a local Mirror and of an Environment give
rows of the real shape, then SQL in one transaction repeats them (new ids, one apply a
minute, 15% deploys, 3% failures, a health result every other apply, an event every 50)
up to `--applies`. That is data building, not timed. Then, side by side in one run:

- `metrics_json`: `reconciler metrics --format json` against the `sqlite3` CLI running the
  equivalent aggregate query (counts, success rates, mean and p95 per activity) on the
  same file: wall time and peak RSS of each process;
- `metrics_in_process`: `store_metrics()` alone in a warm process (no start-up);
- `prune_keep_500`: `reconciler state prune --keep 500` against the `sqlite3` CLI running
  the same DELETEs and VACUUM, each on its own copy of the store; the file sizes before
  and after.

Run alone: `python -m bench.store_scale [--applies N] [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from bench.common import Env, log, reconciler_command

NAME = "store_scale"
APPLIES = 200_000
METRICS_BUDGET_S = 0.1
METRICS_BUDGET_MB = 60
_START = 1_767_225_600  # 2026-01-01T00:00:00Z: one apply a minute from here


def _stamp(seconds: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        + f".{int(seconds * 1000) % 1000:03d}Z"
    )


def real_applies(env: Env, root: Path) -> tuple[Path, Path]:
    """Specs and a store holding two real applies of a Mirror and an Environment."""
    source, work = root / "src.git", root / "work"
    env.git("init", "--quiet", "--bare", source)
    env.git("init", "--quiet", work)
    specs, state = root / "specs", root / "state" / "reconciler.db"
    specs.mkdir()
    (specs / "mirror.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: core}\nspec:\n"
        f"  source: {{url: {source}}}\n  destinations: [{{url: {root / 'backup.git'}}}]\n"
    )
    (specs / "env.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: web}\nspec:\n"
        f"  source: {{repo: {source}, ref: main}}\n  target: {{path: {root / 'deploy'}}}\n"
    )
    for number in range(2):
        (work / "app.txt").write_text(f"version {number}\n")
        env.git("add", "-A", cwd=work)
        env.git("commit", "--quiet", "-m", f"v{number}", cwd=work)
        env.git("push", "--quiet", str(source), "HEAD:refs/heads/main", cwd=work)
        env.run(reconciler_command(specs, state, "apply", "--yes"))
    return specs, state


def grow(state: Path, applies: int, seed: int = 14) -> None:
    """Repeat the real rows up to `applies` revisions, in one transaction."""
    rng = random.Random(seed)
    with closing(sqlite3.connect(state, isolation_level=None)) as db:
        db.row_factory = sqlite3.Row
        template = {
            kind: db.execute(
                "SELECT * FROM journal WHERE address LIKE ? ORDER BY id DESC LIMIT 1",
                (kind + "/%",),
            ).fetchone()
            for kind in ("Mirror", "Environment")
        }
        history = {
            kind: db.execute(
                "SELECT * FROM history WHERE address LIKE ? ORDER BY id DESC LIMIT 1",
                (kind + "/%",),
            ).fetchone()
            for kind in ("Mirror", "Environment")
        }
        revision = db.execute("SELECT * FROM revisions ORDER BY id DESC LIMIT 1").fetchone()
        first = int(revision["id"]) + 1
        db.execute("BEGIN IMMEDIATE")
        revisions, journal, histories, results, events = [], [], [], [], []
        for number in range(first, first + applies - first + 1):
            at = _START + number * 60.0
            kind = "Environment" if rng.random() < 0.15 else "Mirror"
            row, entry = template[kind], history[kind]
            took = rng.uniform(0.02, 0.4 if kind == "Mirror" else 3.0)
            status = "failed" if rng.random() < 0.03 else "done"
            started, finished = _stamp(at), _stamp(at + took)
            revisions.append(
                (
                    number,
                    started,
                    finished,
                    revision["trigger"],
                    revision["specs_source"],
                    revision["specs_commit"],
                    revision["specs_digest"],
                    "success" if status == "done" else "failed",
                    revision["summary"],
                )
            )
            journal.append(
                (
                    number,
                    row["address"],
                    row["unit"],
                    row["steps"],
                    status,
                    1,
                    started,
                    finished,
                    row["message"],
                    row["details"],
                )
            )
            histories.append((row["address"], number, finished, entry["entry"]))
            if number % 2 == 0:
                health = "Healthy" if status == "done" else "Degraded"
                results.append(
                    (
                        finished,
                        "web-health",
                        row["address"],
                        health,
                        "checks pass",
                        '{"checks":[{"type":"sync","status":"' + health + '"}]}',
                    )
                )
            if number % 50 == 0:
                events.append((finished, "info", None, f"watch: reconcile resolved at {number}"))
        db.executemany("INSERT INTO revisions VALUES (?,?,?,?,?,?,?,?,?)", revisions)
        db.executemany(
            "INSERT INTO journal(revision_id, address, unit, steps, status, attempts, "
            "started_at, finished_at, message, details) VALUES (?,?,?,?,?,?,?,?,?,?)",
            journal,
        )
        db.executemany(
            "INSERT INTO history(address, revision_id, at, entry) VALUES (?,?,?,?)", histories
        )
        db.executemany(
            "INSERT INTO health_results(at, policy, address, status, message, report) "
            "VALUES (?,?,?,?,?,?)",
            results,
        )
        db.executemany("INSERT INTO events(at, level, address, message) VALUES (?,?,?,?)", events)
        last = first + applies - first
        # Mirror/core was last applied in the newest revision; Environment/web long ago
        # (a revision prune must keep).
        db.execute("UPDATE resources SET revision_id = ? WHERE kind = 'Mirror'", (last,))
        db.execute("UPDATE resources SET revision_id = ? WHERE kind = 'Environment'", (first + 10,))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
