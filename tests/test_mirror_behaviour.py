"""Mirror behaviour through the CLI: strategies, prune, filters, locks, saved plans, targets."""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from reconciler.store import Store
from tests.conftest import Workspace
from tests.gitservers import WorkRepo, git, make_bare, refs_of, seed_bare


def mirror_spec(ws: Workspace, name: str = "core", extra: str = "", dests: int = 1) -> Path:
    """specs/NAME.yaml mirroring ws/source.git to ws/dest1.git ... destN.git."""
    lines = [
        "apiVersion: reconciler/v1",
        "kind: Mirror",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  source: {url: ../source.git}",
        "  destinations:",
        *(f"    - url: ../dest{i}.git" for i in range(1, dests + 1)),
        *(f"  {line}" for line in extra.strip().splitlines()),
    ]
    return ws.write_spec(f"{name}.yaml", "\n".join(lines) + "\n")


def source_work(ws: Workspace) -> WorkRepo:
    """A working clone of ws/source.git, seeded with main, dev and a tag."""
    seed_bare(ws.root / "source.git", branches=("main", "dev"), tags=("v1",))
    return WorkRepo.create(ws.root / "work", ws.root / "source.git")


def serial(ws: Workspace) -> int:
    with sqlite3.connect(ws.state) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0])


def diverge(ws: Workspace, dest: str = "dest1.git", branch: str = "main") -> str:
    """Give `dest` a commit on `branch` that the source does not have; return its sha."""
    other = WorkRepo.create(ws.root / f"diverge-{dest}", ws.root / dest)
    other.git("checkout", "-q", "-B", branch, f"origin/{branch}")
    sha = other.commit("downstream only", {"local.txt": "x\n"})
    other.push(ws.root / dest, f"{branch}:{branch}", force=True)
    return sha


def test_first_apply_mirrors_and_second_plan_is_empty(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws, dests=2)
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert "Apply complete" in applied.stdout
    for dest in ("dest1.git", "dest2.git"):
        assert refs_of(ws.root / dest) == refs_of(ws.root / "source.git")
        head = git("symbolic-ref", "HEAD", cwd=ws.root / dest).stdout.strip()
        assert head == "refs/heads/main"
    before = serial(ws)
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert "No changes" in plan.stdout
    again = ws.run("apply", "--yes")
    assert again.code == 0 and "Nothing to apply" in again.stdout
    assert serial(ws) == before


def test_plan_json_matches_the_contract(ws: Workspace) -> None:
    refs = source_work(ws) and refs_of(ws.root / "source.git")
    mirror_spec(ws)
    result = ws.run("plan", "--json", "--detailed-exitcode")
    assert result.code == 2, result.output
    plan = json.loads(result.stdout)
    assert set(plan) == {"format_version", "specs", "state_serial", "changes", "summary"}
    assert plan["format_version"] == 1 and plan["specs"]["source"] == "specs"
    assert plan["specs"]["digest"].startswith("sha256:") and plan["specs"]["commit"] is None
    (change,) = plan["changes"]
    assert {k: change[k] for k in ("address", "kind", "name", "action")} == {
        "address": "Mirror/core",
        "kind": "Mirror",
        "name": "core",
        "action": "create",
    }
    creates = {s["ref"]: s["to"] for s in change["steps"] if s["op"] == "create"}
    assert creates == refs
    assert all(s["reason"] for s in change["steps"])
    assert plan["summary"] == {"create": 1, "update": 0, "delete": 0, "noop": 0, "blocked": 0}


def test_incremental_update_fast_forwards_only_what_moved(ws: Workspace) -> None:
    work = source_work(ws)
    mirror_spec(ws)
    assert ws.run("apply", "--yes").code == 0
    old = work.rev("HEAD")
    new = work.commit("more", {"b.txt": "b\n"})
    work.push(ws.root / "source.git", "main:main")
    plan = json.loads(ws.run("plan", "--json").stdout)
    (change,) = plan["changes"]
    assert change["action"] == "update"
    assert [(s["op"], s["ref"], s["from"], s["to"]) for s in change["steps"]] == [
        ("fast-forward", "refs/heads/main", old, new)
    ]
    assert ws.run("apply", "--yes").code == 0
    assert refs_of(ws.root / "dest1.git")["refs/heads/main"] == new
    history = json.loads(ws.run("history", "Mirror/core", "--json").stdout)
    assert history[0]["moved"][0]["op"] == "fast-forward" and history[0]["moved"][0]["to"] == new


def test_diverged_destination_is_left_untouched_under_fail(ws: Workspace) -> None:
    work = source_work(ws)
    mirror_spec(ws, dests=2)
    assert ws.run("apply", "--yes").code == 0
    local = diverge(ws)
    work.commit("source moves on")
    work.push(ws.root / "source.git", "main:main")
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert "blocked" in result.stdout and "diverged" in result.stdout
    assert refs_of(ws.root / "dest1.git")["refs/heads/main"] == local  # nothing lost
    assert refs_of(ws.root / "dest2.git") == refs_of(ws.root / "source.git")  # others synced
    status = json.loads(ws.run("status", "--json").stdout)
    assert status[0]["sync"] == "OutOfSync" and status[0]["health"] == "Degraded"


def test_skip_leaves_diverged_refs_and_counts_as_no_change(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws, extra="conflictStrategy: skip")
    assert ws.run("apply", "--yes").code == 0
    local = diverge(ws)
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output
    assert "skipped" in plan.stdout
    assert ws.run("apply", "--yes").code == 0
    assert refs_of(ws.root / "dest1.git")["refs/heads/main"] == local


def test_force_overwrites_and_keeps_the_old_tip(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws, extra="conflictStrategy: force")
    assert ws.run("apply", "--yes").code == 0
    local = diverge(ws)
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")
    history = json.loads(ws.run("history", "Mirror/core", "--json").stdout)
    (kept,) = history[0]["preserved"]
    assert kept["sha"] == local
    # the overwritten commit still exists in the cache, under the recorded ref
    assert git("rev-parse", kept["kept_as"], cwd=kept["cache"]).stdout.strip() == local


def test_prune_deletes_only_selected_refs_gone_from_the_source(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws, extra='branches: ["*"]\nprune: false')
    assert ws.run("apply", "--yes").code == 0
    git("update-ref", "-d", "refs/heads/dev", cwd=ws.root / "source.git")
    extra = WorkRepo.create(ws.root / "extra", ws.root / "dest1.git")
    extra.git("push", "-q", str(ws.root / "dest1.git"), "origin/main:refs/pull/1/head")
    assert "refs/heads/dev" in refs_of(ws.root / "dest1.git")
    assert ws.run("plan", "--detailed-exitcode").code == 0  # kept without prune
    mirror_spec(ws, extra='branches: ["*"]\nprune: true')
    plan = json.loads(ws.run("plan", "--json").stdout)
    assert [(s["op"], s["ref"]) for s in plan["changes"][0]["steps"]] == [
        ("delete", "refs/heads/dev")
    ]
    assert ws.run("apply", "--yes").code == 0
    dest = refs_of(ws.root / "dest1.git")
    assert "refs/heads/dev" not in dest
    assert "refs/pull/1/head" in dest  # hidden refs are never touched


def test_filters_select_branches_and_tags(ws: Workspace) -> None:
    work = source_work(ws)
    work.branch("release/1.0", "main")
    work.tag("v2")
    work.tag("nightly")
    work.push(ws.root / "source.git")
    mirror_spec(ws, extra='branches: ["main", "release/*"]\ntags: ["v*"]')
    assert ws.run("apply", "--yes").code == 0
    assert sorted(refs_of(ws.root / "dest1.git")) == [
        "refs/heads/main",
        "refs/heads/release/1.0",
        "refs/tags/v1",
        "refs/tags/v2",
    ]
    mirror_spec(ws, extra='branches: ["main", "release/*"]\ntags: ["v*", "nightly"]')
    plan = json.loads(ws.run("plan", "--json").stdout)["changes"][0]
    assert [(s["op"], s["ref"]) for s in plan["steps"]] == [("create", "refs/tags/nightly")]
    assert plan["reason"].endswith("(spec changed: spec.tags)")


def test_a_failing_destination_does_not_stop_the_others(ws: Workspace) -> None:
    source_work(ws)
    (ws.root / "dest1.git").write_text("a file where a repository should be\n")
    mirror_spec(ws, dests=2)
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert "failed" in result.stdout and "dest1.git" in result.stdout
    assert refs_of(ws.root / "dest2.git") == refs_of(ws.root / "source.git")
    status = json.loads(ws.run("status", "--json").stdout)
    assert status[0]["health"] == "Degraded"


def test_a_dependent_is_not_applied_after_its_dependency_failed(ws: Workspace) -> None:
    source_work(ws)
    hook = make_bare(ws.root / "dest1.git") / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho refused by the test >&2\nexit 1\n")
    hook.chmod(0o755)  # every push to the first mirror's destination fails
    mirror_spec(ws, name="first")
    ws.write_spec(
        "second.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: second, dependsOn: [Mirror/first]}
        spec:
          source: {url: ../source.git}
          destinations: [{url: ../second.git}]
        """,
    )
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert "dependency Mirror/first did not apply cleanly" in result.stdout
    assert not (ws.root / "second.git").exists()


def test_target_limits_the_plan(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws, name="one")
    mirror_spec(ws, name="two")
    plan = json.loads(ws.run("plan", "--json", "--target", "Mirror/two").stdout)
    assert [c["address"] for c in plan["changes"]] == ["Mirror/two"]
    unknown = ws.run("plan", "--target", "Mirror/three")
    assert unknown.code == 1 and "no such resource" in unknown.stderr


def test_lock_refuses_a_second_apply_then_waits_with_a_timeout(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws)
    store = Store(ws.state)
    store.lock.acquire("test holder")
    refused = ws.run("apply", "--yes")
    assert refused.code == 1
    assert "locked by pid" in refused.stderr and "test holder" in refused.stderr
    assert not (ws.root / "dest1.git").exists()
    threading.Timer(1.0, store.lock.release).start()
    waited = ws.run("apply", "--yes", "--lock-timeout", "20s")
    assert waited.code == 0, waited.output
    store.close()


def test_a_dead_holders_lock_is_reclaimed(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store(ws.state)
    store.execute(
        "INSERT INTO lock(id, holder, pid, host, command, acquired_at) "
        "VALUES (1, 'x', ?, ?, 'apply', '2026-01-01T00:00:00Z')",
        (dead.pid, socket.gethostname()),
    )
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert "reclaimed the lock" in result.stdout
    assert store.lock.holder() is None


def test_a_lock_wait_ends_as_soon_as_the_holder_dies(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws)
    Store(ws.state).close()
    holder = subprocess.Popen(  # takes the lock, then hangs until killed
        [sys.executable, "-c", HOLD_LOCK, str(ws.state)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    threading.Timer(1.0, lambda: (holder.kill(), holder.wait())).start()
    started = time.monotonic()
    waited = ws.run("apply", "--yes", "--lock-timeout", "5m")
    assert waited.code == 0 and "reclaimed the lock" in waited.stdout, waited.output
    assert time.monotonic() - started < 30  # not the five minutes it was ready to wait
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")
    holder.stdout.close()


HOLD_LOCK = """
import sys, time
from pathlib import Path
from reconciler.store import Store
Store(Path(sys.argv[1])).lock.acquire("apply (hung)")
print("locked", flush=True)
time.sleep(600)
"""


def test_state_unlock(ws: Workspace) -> None:
    store = Store(ws.state)
    store.lock.acquire("test holder")
    live = ws.run("state", "unlock")
    assert live.code == 1 and "still running" in live.stderr
    forced = ws.run("state", "unlock", "--force")
    assert forced.code == 0 and "released" in forced.stdout
    assert store.lock.holder() is None


def test_saved_plan_applies_exactly_and_is_refused_when_stale(ws: Workspace) -> None:
    work = source_work(ws)
    mirror_spec(ws)
    assert ws.run("plan", "--out", "p1.json").code == 0
    assert ws.run("apply", "p1.json").code == 0
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")

    # the state moved since the plan
    work.commit("two")
    work.push(ws.root / "source.git", "main:main")
    assert ws.run("plan", "--out", "p2.json").code == 0
    assert ws.run("plan", "--out", "p3.json").code == 0
    assert ws.run("apply", "p2.json").code == 0
    stale = ws.run("apply", "p3.json")
    assert stale.code == 1 and "the state changed" in stale.stderr

    # the world moved since the plan
    work.commit("three")
    work.push(ws.root / "source.git", "main:main")
    assert ws.run("plan", "--out", "p4.json").code == 0
    work.commit("four")
    work.push(ws.root / "source.git", "main:main")
    moved = ws.run("apply", "p4.json")
    assert moved.code == 1 and "observed facts of Mirror/core changed" in moved.stderr

    # the specs changed since the plan
    assert ws.run("plan", "--out", "p5.json").code == 0
    mirror_spec(ws, extra='tags: ["none*"]')
    changed = ws.run("apply", "p5.json")
    assert changed.code == 1 and "the specs changed" in changed.stderr


def test_markdown_plan_for_a_pull_request(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws)
    result = ws.run("plan", "--format", "markdown")
    assert result.code == 0
    assert "| `+` | `Mirror/core` | create |" in result.stdout
    assert "<details><summary>Mirror/core" in result.stdout


def test_specs_read_from_a_git_commit(ws: Workspace) -> None:
    seed_bare(ws.root / "source.git")
    infra = WorkRepo.create(ws.root / "infra")
    infra.commit(
        "specs",
        {
            "deploy/specs/core.yaml": (
                "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: core}\n"
                f"spec:\n  source: {{url: {ws.root / 'source.git'}}}\n"
                f"  destinations: [{{url: {ws.root / 'dest1.git'}}}]\n"
            )
        },
    )
    sha = infra.rev("HEAD")
    source = f"file://{ws.root / 'infra'}#main:deploy/specs"
    plan = json.loads(ws.run("--specs", source, "plan", "--json").stdout)
    assert plan["specs"]["commit"] == sha and plan["specs"]["source"] == source
    assert ws.run("--specs", source, "apply", "--yes").code == 0
    revisions = json.loads(ws.run("history", "--json").stdout)
    assert revisions[0]["specs_commit"] == sha
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")


def test_a_removed_spec_is_forgotten_without_deleting_anything(ws: Workspace) -> None:
    source_work(ws)
    spec = mirror_spec(ws)
    assert ws.run("apply", "--yes").code == 0
    spec.unlink()
    plan = json.loads(ws.run("plan", "--json").stdout)
    assert [(c["address"], c["action"]) for c in plan["changes"]] == [("Mirror/core", "delete")]
    assert ws.run("apply", "--yes").code == 0
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")
    assert ws.run("state", "show", "Mirror/core").code == 1
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_interrupted_actions_are_reported_and_converged(ws: Workspace) -> None:
    source_work(ws)
    mirror_spec(ws)
    store = Store(ws.state)
    revision = store.begin_revision("apply", "specs", None, "sha256:x")
    store.journal_start(store.journal_add(revision, "Mirror/core", "x", []))
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert "interrupted" in result.stdout
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")
    assert store.revisions()[-1]["outcome"] == "interrupted"


def test_init_validate_and_schema(ws: Workspace) -> None:
    made = ws.run("init", "example")
    assert made.code == 0
    assert ws.run("--specs", "example", "validate").code == 0
    again = ws.run("init", "example")
    assert again.code == 1 and "already exists" in again.stderr
    schema = json.loads(ws.run("schema").stdout)
    assert "MirrorSpec" in schema["$defs"]
    assert schema["$defs"]["MirrorSpec"]["properties"]["conflictStrategy"]["enum"] == [
        "fail",
        "force",
        "skip",
    ]


def test_push_is_compare_and_swap(tmp_path: Path) -> None:
    from reconciler.git import GitRunner, RefUpdate, Remote, push
    from reconciler.redaction import Redactor

    refs = seed_bare(tmp_path / "src.git", branches=("main", "dev"))
    dest = make_bare(tmp_path / "dst.git")
    runner = GitRunner(tmp_path / "cache", Redactor())
    main, dev = refs["refs/heads/main"], refs["refs/heads/dev"]
    outcomes = push(
        runner,
        tmp_path / "src.git",
        Remote(str(dest)),
        [RefUpdate("refs/heads/main", main, None), RefUpdate("refs/heads/dev", dev, None)],
    )
    assert all(o.ok for o in outcomes)
    # dev is expected at main's sha, but it is at dev's: rejected; main moves regardless
    outcomes = push(
        runner,
        tmp_path / "src.git",
        Remote(str(dest)),
        [
            RefUpdate("refs/heads/dev", main, expected=main),
            RefUpdate("refs/heads/main", dev, expected=main),
        ],
    )
    by_ref = {o.ref: o for o in outcomes}
    assert not by_ref["refs/heads/dev"].ok and "stale info" in by_ref["refs/heads/dev"].summary
    assert by_ref["refs/heads/main"].ok
    assert refs_of(dest) == {"refs/heads/main": dev, "refs/heads/dev": dev}


def test_a_stop_request_lets_the_running_action_finish_and_starts_no_other(
    ws: Workspace,
) -> None:
    from reconciler.engine.applying import Listener, execute
    from reconciler.engine.planning import load, make_plan
    from reconciler.engine.workspace import Workspace as Run

    source_work(ws)
    mirror_spec(ws, dests=3)
    run = Run(specs=str(ws.specs), state=ws.state, parallelism=1)
    finished: list[str] = []

    class StopAfterOne(Listener):
        def finished(self, report: object) -> None:
            finished.append("one")

    specs = load(run)
    report = execute(
        run, make_plan(run, specs), specs, StopAfterOne(), should_stop=lambda: bool(finished)
    )
    assert report.stopped and not report.ok
    assert [a.outcome for a in report.actions] == ["done"]  # only the running one finished
    assert "2 actions not started" in report.notes[-1]
    again = ws.run("apply", "--yes")  # a re-run converges
    assert again.code == 0, again.output
    for dest in ("dest1.git", "dest2.git", "dest3.git"):
        assert refs_of(ws.root / dest) == refs_of(ws.root / "source.git")
