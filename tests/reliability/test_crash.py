"""Crash consistency (issue 6): `kill -9` of `reconciler apply` at many points of a mixed set
(30 mirrors x 3 destinations, 2 taxonomies x 4 targets, 2 environments), then a re-run.

Each round makes new work (commits and tags on some sources, now and then a wiped
destination, a taxonomy term change, a downstream edit of a target, a new app commit),
starts `apply --yes`, and kills it when a seeded schedule says:
after a random delay (start-up, observe, plan, lock) or when the n-th journal entry of the
new revision is pending, running or finished (the test reads the store's journal
read-only while the apply runs). Half of the kills hit the process alone (its git children
finish on their own), half its whole process group (git dies mid-write too). After each
kill the world must be consistent as it stands, the next apply must mark what was cut off
`interrupted` and converge, and nothing a user had may be lost.

RELIABILITY_SIZE=full (make reliability) makes at least 100 kills; make test a handful.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.gitservers import WorkRepo, git, make_bare, refs_of
from tests.reliability.mixedset import (
    DEST_ORGS,
    ENVIRONMENTS,
    JournalRow,
    World,
    read_journal,
    release_problems,
    store_query,
)
from tests.reliability.report import record
from tests.reliability.scale import seed, size

KILLS = size(4, 100)
MIRRORS = size(30, 30)
RERUNS = 3  # applies allowed to converge after a kill (2 s, 4 s apart)
POLL = 0.003  # seconds between reads of the journal while an apply runs


@dataclass(frozen=True)
class Trigger:
    """When to kill: `delay` seconds after start, or once `count` journal entries of the
    new revision have reached `phase` (pending, running or finished)."""

    phase: str
    count: int = 0
    delay: float = 0.0
    group: bool = False  # kill the whole process group, not only the apply process

    @classmethod
    def choose(cls, rng: random.Random) -> Trigger:
        """A seeded choice, spread over the journal's phases."""
        phase = rng.choice(("delay", "pending", "running", "running", "finished"))
        group = rng.random() < 0.5
        if phase == "delay":
            return cls("delay", delay=rng.uniform(0.05, 1.5), group=group)
        return cls(phase, count=rng.randint(1, 12), delay=rng.uniform(0, 0.03), group=group)

    def fired(self, rows: list[JournalRow]) -> bool:
        """True once the journal shows what this trigger waits for."""
        if self.phase == "pending":
            return sum(r.status == "pending" for r in rows) >= self.count
        if self.phase == "running":
            started = sum(r.status != "pending" for r in rows)
            return started >= self.count and any(r.status == "running" for r in rows)
        return sum(r.status in ("done", "failed") for r in rows) >= self.count


@dataclass
class Tally:
    """What the suite saw, for the report and the assertions."""

    kills: int = 0
    completed: int = 0  # applies that finished before their trigger fired
    converged: int = 0
    reruns: int = 0
    interrupted_seen: int = 0
    lost: list[str] = field(default_factory=list)
    phases: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)  # where the time goes

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the time spent in the block to `stage`."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[stage] += time.monotonic() - started


def reconciler(world: World, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion in the world's directory."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=world.root,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "GIT_"))}


def last_revision(world: World) -> int:
    """The newest revision id (0 before the first apply)."""
    if not world.state.exists():
        return 0
    rows = store_query(world.state, "SELECT COALESCE(MAX(id), 0) FROM revisions")
    return int(rows[0][0])


def apply_and_kill(world: World, trigger: Trigger, after: int) -> list[JournalRow] | None:
    """Start `apply --yes` and kill it when `trigger` fires; returns the journal of the new
    revision as the kill left it, or None when the apply finished first."""
    log = (world.root / "killed.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes"],
        cwd=world.root,
        env=_environment(),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so a group kill reaches git too
    )
    started = time.monotonic()
    try:
        while process.poll() is None:
            if trigger.phase == "delay":
                fire = time.monotonic() - started >= trigger.delay
            else:
                rows = read_journal(world.state, after)
                fire = rows is not None and trigger.fired(rows)
                if fire and trigger.delay:
                    time.sleep(trigger.delay)  # land inside the action, not at its edge
            if fire:
                if trigger.group:
                    os.killpg(process.pid, signal.SIGKILL)
                else:
                    os.kill(process.pid, signal.SIGKILL)
                break
            time.sleep(POLL)
        code = process.wait(timeout=60)
    finally:
        log.close()
        _drain_group(process.pid)
    if code != -signal.SIGKILL:
        assert code == 0, f"an apply that was not killed failed:\n{_tail(world)}"
        return None
    return read_journal(world.state, after) or []


def _drain_group(pgid: int, patience: float = 60) -> None:
    """Wait until the children a process-only kill orphaned (git, hooks) have finished."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    os.killpg(pgid, signal.SIGKILL)


def _tail(world: World) -> str:
    return (world.root / "killed.log").read_text()[-3000:]


def phase_of(trigger: Trigger, rows: list[JournalRow]) -> str:
    """Where the kill landed, from the journal it left."""
    if not rows:
        return "before journal (start, observe, plan, lock)"
    if trigger.phase != "delay":
        return trigger.phase
    if any(r.status == "running" for r in rows):
        return "running"
    return "pending" if any(r.status == "pending" for r in rows) else "finished"


def check_after_kill(world: World, deployed: set[str], before: dict[str, Path | None]) -> None:
    """The world as a kill left it: store intact, no dangling ref, no partial file, every
    `current` a whole release, and the release that ran before the kill still there."""
    (integrity,) = store_query(world.state, "PRAGMA integrity_check")
    assert integrity == ("ok",), f"store damaged by the kill: {integrity}"
    dangling = world.destination_problems()
    assert not dangling, f"destination refs to missing objects: {dangling}"
    partial = world.target_problems()
    assert not partial, f"taxonomy targets hold partial files: {partial}"
    broken = world.release_problems(deployed)
    assert not broken, f"environments left broken: {broken}"
    for name, release in before.items():
        if release is not None and release_problems(release, verified=True):
            raise AssertionError(f"{name}: the kill destroyed the running release {release}")


def converge(world: World, cut_off: list[JournalRow], tally: Tally) -> None:
    """Re-run apply until it succeeds; the first re-run must mark every action the kill
    cut off `interrupted` and say so; then the plan must be empty."""
    running_revisions = store_query(world.state, "SELECT id FROM revisions WHERE outcome='running'")
    for attempt in range(1, RERUNS + 1):
        rerun = reconciler(world, "apply", "--yes")
        tally.reruns += 1
        if attempt == 1:
            _check_interrupted(world, cut_off, running_revisions, rerun.stdout, tally)
        if rerun.returncode == 0:
            break
        time.sleep(2 * attempt)  # back off like watch does (a killed git's lock goes stale)
    else:
        raise AssertionError(f"no convergence in {RERUNS} applies:\n{rerun.stdout[-3000:]}")
    plan = reconciler(world, "plan", "--detailed-exitcode")
    assert plan.returncode == 0, f"plan not empty after convergence:\n{plan.stdout[-3000:]}"
    tally.converged += 1


def _check_interrupted(
    world: World,
    cut_off: list[JournalRow],
    revisions: list[tuple[int]],
    output: str,
    tally: Tally,
) -> None:
    ids = [r.id for r in cut_off if r.status in ("pending", "running")]
    if ids:
        marks = ",".join("?" * len(ids))
        statuses = store_query(
            world.state, f"SELECT status FROM journal WHERE id IN ({marks})", tuple(ids)
        )
        assert {s for (s,) in statuses} == {"interrupted"}, f"journal after re-run: {statuses}"
        assert f"{len(ids)} actions of an earlier apply were interrupted" in output, output[-2000:]
        tally.interrupted_seen += 1
    for (revision,) in revisions:
        (outcome,) = store_query(
            world.state, "SELECT outcome FROM revisions WHERE id=?", (revision,)
        )
        assert outcome == ("interrupted",), f"revision {revision} after the re-run: {outcome}"


def check_converged(world: World, deployed: set[str], tally: Tally) -> None:
    """After convergence: destinations equal their sources, downstream taxonomy edits kept,
    every environment runs a verified release of the app's tip."""
    tally.lost += world.destination_problems()
    tally.lost += world.lost_downstream()
    tally.lost += world.release_problems(deployed, verified=True)
    assert world.app is not None
    tip = world.app.rev("HEAD")
    for name, release in world.current_releases().items():
        assert release is not None and (release / "BUILT").read_text().strip() == tip, (
            f"{name} does not run the app's tip {tip[:7]} after convergence ({release})"
        )
    assert not tally.lost, f"lost after round {world.round}: {tally.lost}"


def mirrors_in_sync(world: World) -> list[str]:
    """Sources whose refs differ from one of their destinations (read with the git CLI)."""
    differ = []
    for source in sorted((world.root / "src").glob("m*.git")):
        want = _refs(source)
        for org in DEST_ORGS:
            if _refs(world.root / org / source.name) != want:
                differ.append(f"{org}/{source.name}")
    return differ


def _refs(repo: Path) -> str:
    return git("for-each-ref", "--format=%(objectname) %(refname)", cwd=repo).stdout


@pytest.mark.timeout(size(300, 1800))
def test_kill_9_at_many_points_and_every_rerun_converges(tmp_path: Path) -> None:
    started = time.monotonic()
    rng = random.Random(seed())
    world = World(tmp_path, mirrors=MIRRORS, rng=rng)
    world.build()
    tally = Tally()
    deployed: set[str] = set()
    rounds = 0
    while tally.kills < KILLS:
        rounds += 1
        assert rounds <= 3 * KILLS, f"triggers keep missing: {tally}"
        if rounds > 1:
            with tally.timed("new work"):
                world.new_work()
        trigger = Trigger.choose(rng)
        before = world.current_releases()
        after = last_revision(world)
        with tally.timed("killed apply"):
            cut_off = apply_and_kill(world, trigger, after)
        if cut_off is None:
            tally.completed += 1
        else:
            tally.kills += 1
            tally.phases[phase_of(trigger, cut_off)] += 1
            tally.modes["process group" if trigger.group else "process"] += 1
            with tally.timed("checks"):
                check_after_kill(world, deployed, before)
            with tally.timed("re-runs and plan"):
                converge(world, cut_off, tally)
        deployed |= {n for n, r in world.current_releases().items() if r is not None}
        with tally.timed("checks"):
            check_converged(world, deployed, tally)
    assert deployed == set(ENVIRONMENTS)
    differ = mirrors_in_sync(world)
    assert not differ, f"destinations differ from their sources: {differ}"
    fsck = world.destination_connectivity()
    assert not fsck, f"destinations fail git fsck: {fsck}"
    if KILLS >= 100:  # the full run must have hit every phase of the journal
        assert len(tally.phases) == 4, tally.phases
    ((stale_locks,),) = store_query(  # locks of killed git processes that a re-run cleared
        world.state, "SELECT COUNT(*) FROM history WHERE entry LIKE '%left by a killed git%'"
    )
    seconds = time.monotonic() - started
    record(
        "crash",
        seconds,
        kills=tally.kills,
        converged=tally.converged,
        lost=len(tally.lost),
        interrupted_seen=tally.interrupted_seen,
        reruns=tally.reruns,
        stale_locks_cleared=stale_locks,
        completed_unkilled=tally.completed,
        phases=dict(tally.phases),
        modes=dict(tally.modes),
    )
    tally.seconds = Counter({k: round(v) for k, v in tally.seconds.items()})
    print(f"crash: {tally}, stale locks cleared {stale_locks}, in {seconds:.0f}s")


def test_a_deploy_killed_before_its_verify_is_verified_and_recorded_by_the_next_apply(
    tmp_path: Path,
) -> None:
    """Regression: a kill between the switch of `current` and the end of verify left a
    release that never passed its checks running, a next plan that called it in sync, and
    the store still naming the old release, so an environment requiring it stayed blocked."""
    world = World(tmp_path, mirrors=0, rng=random.Random(seed()))
    world.build()
    assert reconciler(world, "apply", "--yes").returncode == 0
    assert world.app is not None
    hold = world.root / "deploy" / "hold"
    hold.touch()
    world.app.commit("app 2", {"VERSION": "2\n"})
    world.app.push(world.root / "src" / "app.git")
    tip = world.app.rev("HEAD")
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes"],
        cwd=world.root,
        env=_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    holding = hold.parent / "holding"
    deadline = time.monotonic() + 60
    while not holding.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()  # staging's activate hook is running: switched, never verified
    process.wait()
    os.kill(int(holding.read_text()), signal.SIGKILL)
    hold.unlink()
    staging = world.current_releases()["staging"]
    assert staging is not None and (staging / "BUILT").read_text().strip() == tip
    assert not (staging / "VERIFIED").exists()

    plan = reconciler(world, "plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout
    assert "never verified it" in plan.stdout, plan.stdout
    applied = reconciler(world, "apply", "--yes")
    assert applied.returncode == 0, applied.stdout
    for name in ENVIRONMENTS:
        release = world.current_releases()[name]
        assert release is not None and not release_problems(release, verified=True)
        assert (release / "BUILT").read_text().strip() == tip, name  # production unblocked
    assert reconciler(world, "plan", "--detailed-exitcode").returncode == 0


def test_a_ref_lock_left_by_a_killed_git_is_cleared_once_stale(ws: Workspace) -> None:
    """Regression: a group kill during a push left `refs/heads/main.lock` and `HEAD.lock`
    in a local destination, and every later push of main was refused ("failed to update
    ref") for good. A lock older than a few seconds is removed and named; a fresh one (a
    git that may still be running) is left alone."""
    work = WorkRepo.create(ws.root / "work", bare_remote=make_bare(ws.root / "src.git"))
    work.commit("one", {"a.txt": "1\n"})
    work.push(ws.root / "src.git")
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: m}}
        spec:
          source: {{url: {ws.root / "src.git"}}}
          destinations: [{{url: {ws.root / "dst.git"}}}]
        """,
    )
    assert ws.run("apply", "--yes").code == 0
    locks = [
        ws.root / "dst.git" / "refs" / "heads" / "main.lock",
        ws.root / "dst.git" / "HEAD.lock",
    ]
    for lock in locks:
        lock.write_text("")  # what a killed receive-pack leaves
    tip = work.commit("two", {"a.txt": "2\n"})
    work.push(ws.root / "src.git")

    fresh = ws.run("apply", "--yes")  # the git holding it might still be alive
    assert fresh.code == 1 and "failed to update ref" in fresh.output, fresh.output
    assert all(lock.exists() for lock in locks)

    for lock in locks:
        os.utime(lock, (time.time() - 60, time.time() - 60))
    stale = ws.run("apply", "--yes")
    assert stale.code == 0, stale.output
    assert refs_of(ws.root / "dst.git")["refs/heads/main"] == tip
    assert not any(lock.exists() for lock in locks)
    history = ws.run("history", "Mirror/m", "--json").stdout
    assert "stale refs/heads/main.lock" in history and "stale HEAD.lock" in history, history


def test_a_repository_half_made_by_a_killed_git_init_is_completed(ws: Workspace) -> None:
    """Regression: a kill during `git init --bare` of a new destination left HEAD, config and
    refs/ without objects/; it counted as existing, so every later push failed ("Could not
    read from remote repository") and the mirror never converged. The same for the cache."""
    work = WorkRepo.create(ws.root / "work", bare_remote=make_bare(ws.root / "src.git"))
    work.commit("one", {"a.txt": "1\n"})
    work.push(ws.root / "src.git")
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: m}}
        spec:
          source: {{url: {ws.root / "src.git"}}}
          destinations: [{{url: {ws.root / "dst.git"}}}]
        """,
    )
    assert ws.run("apply", "--yes").code == 0
    shutil.rmtree(ws.root / "dst.git")
    make_bare(ws.root / "dst.git")
    shutil.rmtree(ws.root / "dst.git" / "objects")  # what the killed `git init` left
    for cache in (ws.root / "state" / "cache").glob("*/*.git"):
        shutil.rmtree(cache / "objects")
    tip = work.commit("two", {"a.txt": "2\n"})
    work.push(ws.root / "src.git")

    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert refs_of(ws.root / "dst.git")["refs/heads/main"] == tip
    assert ws.run("plan", "--detailed-exitcode").code == 0
