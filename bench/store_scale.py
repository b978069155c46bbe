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
import random
import shutil
import sqlite3
import statistics
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
        for number in range(first, applies + 1):
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
        last = applies
        # Mirror/core was last applied in the newest revision; Environment/web long ago
        # (a revision prune must keep).
        db.execute("UPDATE resources SET revision_id = ? WHERE kind = 'Mirror'", (last,))
        db.execute("UPDATE resources SET revision_id = ? WHERE kind = 'Environment'", (first + 10,))
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


# What `metrics` computes, as one would write it for the sqlite3 CLI: per activity the
# count, successes, mean and p95 of the finished entries' durations.
_DURATIONS = (
    "WITH d AS (SELECT CASE WHEN address LIKE 'Environment/%' THEN 'deploy' "
    "WHEN address LIKE 'Mirror/%' OR address LIKE 'Taxonomy/%' THEN 'sync' END AS activity, "
    "status, MAX(0, (julianday(finished_at) - julianday(started_at)) * 86400) AS s "
    "FROM journal WHERE status IN ('done', 'failed') AND started_at IS NOT NULL) "
)
BASELINE_QUERY = "".join(
    f"{_DURATIONS}SELECT '{a}', COUNT(*), round(AVG(status = 'done'), 4), round(AVG(s), 3), "
    f"(SELECT round(s, 3) FROM d WHERE activity = '{a}' ORDER BY s LIMIT 1 OFFSET "
    f"(SELECT MAX(0, (COUNT(*) * 95 + 99) / 100 - 1) FROM d WHERE activity = '{a}')) "
    f"FROM d WHERE activity = '{a}';\n"
    for a in ("sync", "deploy")
)
# The same rows `state prune --keep 500` removes, as plain SQL (then VACUUM).
_PROTECTED = (
    "(SELECT revision_id FROM resources UNION SELECT id FROM revisions WHERE outcome = 'running')"
)
_CUT = "(SELECT id FROM revisions ORDER BY id DESC LIMIT 1 OFFSET 499)"
_SINCE = f"(SELECT started_at FROM revisions WHERE id = {_CUT})"
BASELINE_PRUNE = f"""PRAGMA foreign_keys = ON;
BEGIN;
DELETE FROM journal WHERE revision_id < {_CUT} AND revision_id NOT IN {_PROTECTED};
DELETE FROM history WHERE id NOT IN (SELECT MAX(id) FROM history GROUP BY address)
  AND revision_id < {_CUT} AND revision_id NOT IN {_PROTECTED};
DELETE FROM revisions WHERE id < {_CUT} AND id NOT IN {_PROTECTED};
DELETE FROM events WHERE at < {_SINCE};
DELETE FROM health_results WHERE at < {_SINCE}
  AND id NOT IN (SELECT MAX(id) FROM health_results GROUP BY policy, address);
COMMIT;
VACUUM;
PRAGMA wal_checkpoint(TRUNCATE);
"""

_IN_PROCESS = """
import sqlite3, statistics, sys, time
from pathlib import Path
from reconciler.kinds.registry import default_registry
from reconciler.store import Store
from reconciler.watch.metrics import store_metrics
path, query, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
store, registry, plain = Store(Path(path)), default_registry(), sqlite3.connect(path)
ours, theirs = [], []
for _ in range(runs + 1):  # the first of each is a warm-up
    started = time.perf_counter(); store_metrics(store, registry)
    ours.append(time.perf_counter() - started)
    started = time.perf_counter(); plain.executescript(query)
    theirs.append(time.perf_counter() - started)
print(statistics.median(theirs[1:]), statistics.median(ours[1:]))
"""


def measured(env: Env, command: list[str], stdin: bytes | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process, the RSS as GNU time reports it (a
    child's own rusage would count the memory of this process it was forked from)."""
    with tempfile.NamedTemporaryFile("r") as report:
        started = time.perf_counter()
        env.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command], stdin=stdin)
        elapsed = time.perf_counter() - started
        return elapsed, int(report.read().split()[-1]) / 1024


def _row(name: str, baseline: float, ours: float, target: Any, note: str) -> dict[str, Any]:
    return {
        "benchmark": name,
        "baseline_s": round(baseline, 3),
        "reconciler_s": round(ours, 3),
        "ratio": round(ours / baseline, 3),
        "target": target,
        "note": note,
    }


def run(applies: int = APPLIES, runs: int = 5) -> list[dict[str, Any]]:
    """Build the store once, then measure both sides of each case."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as temporary:
        root = Path(temporary)
        env = Env(root)
        log(f"building a store of {applies} applies")
        specs, state = real_applies(env, root)
        grow(state, applies)
        env.run(reconciler_command(specs, state, "state", "list"))  # migrated: untimed
        for backup in state.parent.glob("*.bak"):
            backup.unlink()
        metrics = reconciler_command(specs, state, "metrics", "--format", "json")
        sql = ["sqlite3", str(state)]
        version = reconciler_command(specs, state, "--version")
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        start: list[tuple[float, float]] = []
        for number in range(runs + 1):  # alternating; the first pair is a warm-up
            if number:
                start.append(measured(env, version))
            pair = [(ours, metrics, None), (theirs, sql, BASELINE_QUERY.encode())]
            for into, command, stdin in pair if number % 2 else pair[::-1]:
                result = measured(env, command, stdin)
                if number:
                    into.append(result)
        log(f"metrics: reconciler {ours}, sqlite3 {theirs}")
        warm = env.run([sys.executable, "-c", _IN_PROCESS, str(state), BASELINE_QUERY, str(runs)])
        plain_s, in_process_s = map(float, warm.stdout.split())
        size = state.stat().st_size
        copies = [root / "ours.db", root / "theirs.db"]
        for copy in copies:
            shutil.copyfile(state, copy)
        prune_ours, _ = measured(
            env, reconciler_command(specs, copies[0], "state", "prune", "--keep", "500")
        )
        prune_theirs, _ = measured(env, ["sqlite3", str(copies[1])], BASELINE_PRUNE.encode())
        sizes = [copy.stat().st_size for copy in copies]
    wall = statistics.median(t for t, _ in ours)
    rss = max(m for _, m in ours)
    base_wall = statistics.median(t for t, _ in theirs)
    base_rss = max(m for _, m in theirs)
    startup = statistics.median(t for t, _ in start)
    return [
        _row(
            f"{NAME}_metrics_json",
            base_wall,
            wall,
            f"<= {METRICS_BUDGET_S} s, <= {METRICS_BUDGET_MB} MB",
            f"`metrics --format json` at {applies} applies ({size / 1e6:.0f} MB store): "
            f"peak RSS {rss:.0f} MB (sqlite3 CLI {base_rss:.0f} MB); median of {runs}; "
            f"start-up alone (`reconciler --version`) {startup:.3f} s, "
            f"{max(m for _, m in start):.0f} MB",
        ),
        _row(
            f"{NAME}_metrics_in_process",
            plain_s,
            in_process_s,
            f"<= {METRICS_BUDGET_S} s",
            "store_metrics() in a warm process (no start-up) vs python sqlite3 running the "
            f"baseline query; budget {'met' if in_process_s <= METRICS_BUDGET_S else 'MISSED'}",
        ),
        _row(
            f"{NAME}_prune_keep_500",
            prune_theirs,
            prune_ours,
            "file shrinks",
            f"`state prune --keep 500`: {size / 1e6:.0f} MB -> {sizes[0] / 1e6:.1f} MB "
            f"(sqlite3 CLI, same DELETEs and VACUUM: {sizes[1] / 1e6:.1f} MB)",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    """Print the rows."""
    parser = argparse.ArgumentParser(prog="python -m bench.store_scale", description=__doc__)
    parser.add_argument("--applies", type=int, default=APPLIES)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    for row in run(args.applies, args.runs):
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
