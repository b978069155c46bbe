"""`state prune` and watch's retention (issue 14): what goes, what the state still needs,
the dry run, the apply lock, and the file that shrinks."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

from reconciler.engine.workspace import Workspace as EngineWorkspace
from reconciler.store import ResourceRecord, Store, now, stamp, utc_now
from reconciler.store.health import HealthRecords
from reconciler.store.retention import TABLES
from reconciler.watch.watching import Watcher, WatchOptions
from tests.conftest import Workspace, core_mirror, ok
from tests.gitservers import make_bare
from tests.test_taxonomy_behaviour import write_spec


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: db.execute(f"SELECT * FROM {n} ORDER BY rowid").fetchall() for n in names}


def grown(path: Path, applies: int, pad: int = 2000) -> None:
    """A store of `applies` applies of one resource, written through the store's own API."""
    store = Store(path)
    health = HealthRecords(store)
    for _ in range(applies):
        revision = store.begin_revision("apply", "specs", None, "sha256:x")
        entry = store.journal_add(
            revision, "Mirror/a", "/d.git", [{"op": "sync", "pad": "s" * pad}]
        )
        store.journal_start(entry)
        record = ResourceRecord(
            "Mirror/a", "Mirror", "a", {}, "sha256:x", {}, revision, now(), "done", "ok", None
        )
        history = [{"revision": revision, "summary": "synced", "pad": "h" * pad}]
        store.record_result(entry, "done", 1, "ok", {"pad": "d" * pad}, record, history)
        store.finish_revision(revision, "success", {})
        health.add_result("policy", "Mirror/a", "Healthy", "ok", {"pad": "r" * pad})
        store.add_event("info", "applied")
    store.close()


def counts(output: str) -> dict[str, int]:
    """The TABLE / count lines of `state prune`."""
    found = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in TABLES:
            found[words[0]] = int(words[1])
    return found


def _json(ws: Workspace, *args: str) -> Any:
    return json.loads(ok(ws.run(*args)).stdout)


def test_a_prune_keeps_what_state_status_history_rollback_and_an_open_incident_need(
    ws: Workspace,
) -> None:
    core_mirror(ws)
    make_bare(ws.root / "site.git")
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"])
    ok(ws.run("apply", "--yes"))  # revision 1: the mirror (never applied again) and v1
    for old, new in (
        ("Shipping releases", "Delivery"),
        ("Delivery", "Shipping"),
        ("Shipping", "Releases"),
    ):
        spec.write_text(spec.read_text().replace(f"description: {old}", f"description: {new}"))
        ok(ws.run("apply", "--yes"))  # revisions 2-4, versions 2-4
    store = Store(ws.state)
    health = HealthRecords(store)
    incident = health.create_incident("uptime", "Mirror/core", "down")
    for status in ("Healthy", "Degraded"):
        health.add_result("uptime", "Mirror/core", status, status, {})
    store.close()
    before = {
        "status": _json(ws, "status", "--json"),
        "mirror": _json(ws, "state", "show", "Mirror/core"),
        "taxonomy": _json(ws, "state", "show", "Taxonomy/docs"),
        "revisions": _json(ws, "history", "--json"),
        "mirror history": _json(ws, "history", "Mirror/core", "--json"),
        "taxonomy history": _json(ws, "history", "Taxonomy/docs", "--json"),
    }
    assert [r["id"] for r in before["revisions"]] == [4, 3, 2, 1]

    pruned = ok(ws.run("state", "prune", "--keep", "2"))

    assert counts(pruned.stdout) == {
        "revisions": 1,  # 2 only: 1 is where Mirror/core was last applied
        "journal": 1,
        "history": 1,
        "events": 0,
        "health_results": 0,  # the newest per (policy, address) stays
        "versions": 2,  # v1 and v2: v4 is applied, v3 is what `rollback` returns to
        "version_chunks": 2,  # the terms of v1 and v2, which no kept version lists
    }, pruned.stdout
    assert _json(ws, "status", "--json") == before["status"]
    assert _json(ws, "state", "show", "Mirror/core") == before["mirror"]
    assert _json(ws, "state", "show", "Taxonomy/docs") == before["taxonomy"]
    assert _json(ws, "history", "--json") == [
        r for r in before["revisions"] if r["id"] in (4, 3, 1)
    ]
    assert _json(ws, "history", "Mirror/core", "--json") == before["mirror history"]
    assert _json(ws, "history", "Taxonomy/docs", "--json") == [
        e for e in before["taxonomy history"] if e["revision"] in (1, 3, 4)
    ]  # revision 1 stays whole: Mirror/core was last applied in it
    store = Store(ws.state)
    assert HealthRecords(store).open_incidents() == [incident]
    assert [r["status"] for r in HealthRecords(store).latest_results()] == ["Degraded"]
    store.close()
    assert ws.run("plan", "--detailed-exitcode").code == 0  # the records still describe it
    rolled = ok(ws.run("rollback", "Taxonomy/docs"))  # the version before the current
    assert "rolled back to v3" in rolled.stdout


def test_versions_a_rollback_may_name_stay_and_older_ones_go(ws: Workspace) -> None:
    make_bare(ws.root / "site.git")
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"])
    ok(ws.run("apply", "--yes"))
    old = "Deployment"
    for new in ("Delivery", "Shipping", "Releases", "Rollout"):  # versions 2-5
        spec.write_text(spec.read_text().replace(f"label: {old}", f"label: {new}"))
        old = new
        ok(ws.run("apply", "--yes"))
    ok(ws.run("rollback", "Taxonomy/docs", "--to", "2"))  # revision 6; state names v2

    ok(ws.run("state", "prune", "--keep", "1"))

    left = ws.run("rollback", "Taxonomy/docs", "--to", "9")
    # v2: applied (the pin); v1: the one before it; v5: the newest. v3 and v4 went.
    assert "recorded versions are 1, 2, 5" in left.output, left.output


def test_the_term_chunks_of_pruned_versions_go_and_those_kept_versions_list_stay(
    ws: Workspace,
) -> None:
    make_bare(ws.root / "site.git")
    terms = "".join(f"- {{id: t{n:04d}, label: T{n}}}\n" for n in range(600))
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"], terms=terms)
    ok(ws.run("apply", "--yes"))
    for n in range(0, 600, 100):  # versions 2-7, each editing another part of the list
        spec.write_text(spec.read_text().replace(f"label: T{n}}}", f"label: U{n}}}"))
        ok(ws.run("apply", "--yes"))
    chunks_before = len(rows(ws.state)["version_chunks"])

    dry = counts(ok(ws.run("state", "prune", "--keep", "1", "--dry-run")).stdout)
    pruned = counts(ok(ws.run("state", "prune", "--keep", "1")).stdout)

    assert dry == pruned and pruned["versions"] > 0 and pruned["version_chunks"] > 0, pruned
    left = rows(ws.state)
    assert len(left["version_chunks"]) == chunks_before - pruned["version_chunks"]
    listed = {
        digest
        for row in left["versions"]
        for digest in json.loads(row[4]).get("$chunks", {}).get("digests", [])
    }
    assert {row[0] for row in left["version_chunks"]} == listed  # none orphaned, none missing
    assert "rolled back to" in ok(ws.run("rollback", "Taxonomy/docs")).stdout


def test_a_dry_run_changes_nothing_and_counts_what_the_prune_removes(ws: Workspace) -> None:
    grown(ws.state, 30)
    before = rows(ws.state)

    dry = ok(ws.run("state", "prune", "--keep", "5", "--dry-run"))

    assert "dry run: nothing removed" in dry.stdout
    assert rows(ws.state) == before
    real = ok(ws.run("state", "prune", "--keep", "5"))
    assert counts(real.stdout) == counts(dry.stdout)
    assert counts(real.stdout)["revisions"] == 25 and counts(real.stdout)["journal"] == 25
    after = rows(ws.state)
    assert [r[0] for r in after["revisions"]] == list(range(26, 31))
    assert "state prune: removed 25 revisions" in str(after["events"][-1])


def test_a_prune_is_refused_while_an_apply_holds_the_lock(ws: Workspace) -> None:
    grown(ws.state, 5)
    holder = Store(ws.state)
    holder.lock.acquire("apply")  # this test's process: alive
    before = rows(ws.state)

    refused = ws.run("state", "prune", "--keep", "1")
    waited = ws.run("state", "prune", "--keep", "1", "--lock-timeout", "1s")

    assert refused.code == 1 and "state is locked by" in refused.stderr, refused.output
    assert "(apply)" in refused.stderr
    assert waited.code == 1 and "after waiting 1s" in waited.stderr, waited.output
    assert rows(ws.state) == before
    holder.lock.release()
    assert counts(ok(ws.run("state", "prune", "--keep", "1")).stdout)["revisions"] == 4


def test_the_store_file_shrinks(ws: Workspace) -> None:
    grown(ws.state, 300)
    size = ws.state.stat().st_size

    pruned = ok(ws.run("state", "prune", "--keep", "10"))

    assert ws.state.stat().st_size < size / 5, pruned.stdout
    assert not Path(f"{ws.state}-wal").exists() or Path(f"{ws.state}-wal").stat().st_size == 0
    assert "MB ->" in pruned.stdout


def test_older_than_removes_what_started_before_the_age(ws: Workspace) -> None:
    grown(ws.state, 6)
    old = stamp(utc_now() - timedelta(days=100))
    with closing(sqlite3.connect(ws.state)) as db:
        db.execute("UPDATE revisions SET started_at = ? WHERE id <= 3", (old,))
        db.execute("UPDATE events SET at = ? WHERE id <= 3", (old,))
        db.commit()

    pruned = ok(ws.run("state", "prune", "--older-than", "90d"))

    # Revisions 1-3 are older; 6 holds the record, so 1, 2 and 3 go.
    assert counts(pruned.stdout)["revisions"] == 3
    assert counts(pruned.stdout)["events"] == 3
    assert [r["id"] for r in _json(ws, "history", "--json")] == [6, 5, 4]
    both = ok(ws.run("state", "prune", "--older-than", "90d", "--keep", "1"))
    assert counts(both.stdout)["revisions"] == 2  # at most one, and none older


def test_prune_needs_a_window_and_a_duration_it_understands(ws: Workspace) -> None:
    grown(ws.state, 2)
    bare = ws.run("state", "prune")
    assert bare.code == 1 and "--keep N and/or --older-than DUR" in bare.stderr
    bad = ws.run("state", "prune", "--older-than", "3 months")
    assert bad.code == 1 and "--older-than" in bad.stderr
    assert "prune" in ok(ws.run("state", "--help")).stdout


def test_watch_prunes_to_its_retention_and_logs_it(ws: Workspace) -> None:
    grown(ws.state, 12)
    assert (WatchOptions().keep, WatchOptions().keep_for) == (1000, 90 * 86400.0)
    log: list[dict[str, Any]] = []
    watcher = Watcher(
        EngineWorkspace(str(ws.specs), ws.state), WatchOptions(keep=4, listen=None), log.append
    )

    watcher.prune()
    watcher.prune()

    first, second = log
    assert first["event"] == "prune" and first["keep"] == "4 revisions, 90 days"
    assert first["removed"]["revisions"] == 8 and first["bytes"][1] < first["bytes"][0]
    assert second["removed"] == {}  # nothing left to remove: the lock was not even taken
