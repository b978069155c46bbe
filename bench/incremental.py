"""incremental: one change costs one change.

Rows, each against its baseline in the same run:

- (a) 3,000 Mirror resources (one spec file each), one source repository gets a commit:
  `apply --yes` vs a no-op `plan --target` of one resource; also `git push --mirror` of
  that one repository (the transfer itself).
- (b) `apply --yes --target Mirror/r0001` after the same kind of commit, vs the same no-op
  `plan --target`.
- (c) `watch` over 1,000 resources: 20 spec edits of one resource, median save -> applied,
  vs the same with 1 resource.
- (d) no-op `plan` over 1,000 and 10,000 resources, and the exponent
  log(t10k / t1k) / log(10) (1.0: linear).

Run: `python -m bench incremental` (sizes: INCREMENTAL_MIRRORS, INCREMENTAL_PLAN_SIZES;
rows: INCREMENTAL_ROWS=commit,watch,plan).
"""

from __future__ import annotations

import math
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Env, add_commits, log, reconciler_command, row, small_repo, timed

NAME = "incremental"
MIRRORS = int(os.environ.get("INCREMENTAL_MIRRORS", "3000"))
WATCHED = 1000
EDITS = 20
# 10,000 takes about 3 minutes to build (20,000 repositories and a first apply): 5,000 by
# default, INCREMENTAL_PLAN_SIZES=1000,10000 for the size.
PLAN_SIZES = tuple(int(n) for n in os.environ.get("INCREMENTAL_PLAN_SIZES", "1000,5000").split(","))
ROWS = os.environ.get("INCREMENTAL_ROWS", "commit,watch,plan").split(",")
RUNS = 3
BRANCHES = [f"b{n:02d}" for n in range(EDITS)]


def _name(number: int) -> str:
    return f"r{number:04d}"


def _clone_tree(template: Path, target: Path) -> None:
    """A copy of a bare repository: objects hard-linked (git never rewrites one in place),
    everything else copied."""
    for directory, _subdirs, files in os.walk(template):
        here = Path(directory)
        relative = here.relative_to(template)
        there = target / relative
        there.mkdir(parents=True, exist_ok=True)
        for name in files:
            if "objects" in relative.parts:
                os.link(here / name, there / name)
            else:
                (there / name).write_bytes((here / name).read_bytes())


def _spec(name: str, source: Path, destination: Path, branches: list[str] | None = None) -> str:
    listed = "" if branches is None else f"  branches: [{', '.join(['main', *branches])}]\n"
    return (
        "apiVersion: reconciler/v1\nkind: Mirror\n"
        f"metadata: {{name: {name}}}\nspec:\n"
        f"  source: {{url: {source}}}\n  destinations: [{{url: {destination}}}]\n{listed}"
    )


def build(env: Env, root: Path, count: int) -> tuple[Path, Path]:
    """`count` in-sync Mirrors r0000.. (one spec file each) under root; returns specs, state."""
    template = root / "template.git"
    small_repo(env, template, 0)
    for branch in BRANCHES:
        env.git("branch", branch, "main", cwd=template)
    env.git("pack-refs", "--all", cwd=template)  # as a served repository's refs usually are
    specs = root / "specs"
    specs.mkdir(parents=True)
    for number in range(count):
        name = _name(number)
        source, destination = root / "src" / f"{name}.git", root / "dst" / f"{name}.git"
        _clone_tree(template, source)
        if number != 1:  # r0001 gets only the branches its spec names (the first apply)
            _clone_tree(template, destination)
        branches = [] if number == 1 else None
        (specs / f"{name}.yaml").write_text(_spec(name, source, destination, branches))
    state = root / "state" / "reconciler.db"
    env.run(reconciler_command(specs, state, "apply", "--yes"))  # records the in-sync set
    check = env.run(reconciler_command(specs, state, "plan", "--detailed-exitcode"), check=False)
    if check.returncode != 0:
        raise RuntimeError(f"the setup is not in sync: {check.stdout.decode()[-2000:]}")
    return specs, state


def _commit_rows(env: Env, root: Path, runs: int) -> list[dict[str, Any]]:
    """Rows (a) and (b): one changed repository among MIRRORS."""
    log(f"building {MIRRORS} mirrors")
    specs, state = build(env, root, MIRRORS)
    source, destination = root / "src" / "r0001.git", root / "dst" / "r0001.git"
    noop = reconciler_command(specs, state, "plan", "--target", "Mirror/r0000")
    apply_all = reconciler_command(specs, state, "apply", "--yes")
    apply_one = [*apply_all, "--target", "Mirror/r0001"]
    rows: dict[str, list[float]] = {"noop": [], "apply": [], "target": [], "push": []}
    push_copy = root / "push.git"
    for index in range(runs + 1):  # the first round warms up
        times = {"noop": timed(lambda: env.run(noop))}
        add_commits(env, source, 1, f"a{index}")
        times["apply"] = timed(lambda: env.run(apply_all))
        add_commits(env, source, 1, f"b{index}")
        times["target"] = timed(lambda: env.run(apply_one))
        if push_copy.exists():
            env.run(["rm", "-rf", str(push_copy)])
        env.git("clone", "--quiet", "--mirror", destination, push_copy)
        add_commits(env, source, 1, f"c{index}")
        times["push"] = timed(lambda: env.git("push", "--quiet", "--mirror", push_copy, cwd=source))
        env.run(apply_all)  # back in sync for the next round
        log("  ".join(f"{k} {v:.3f} s" for k, v in times.items()))
        if index:
            for key, value in times.items():
                rows[key].append(value)
    noop_s = statistics.median(rows["noop"])
    return [
        row(
            f"incremental_apply_one_of_{MIRRORS}",
            noop_s,
            statistics.median(rows["apply"]),
            3.0,
            f"`apply --yes`, one source of {MIRRORS} Mirrors has a new commit; baseline: no-op "
            f"`plan --target` of one resource; `git push --mirror` of that repository: "
            f"{statistics.median(rows['push']):.3f} s",
        ),
        row(
            f"incremental_apply_target_of_{MIRRORS}",
            noop_s,
            statistics.median(rows["target"]),
            3.0,
            "`apply --yes --target Mirror/r0001` after a commit to its source; baseline: the "
            "same no-op `plan --target`",
        ),
    ]


def _arrived(dst: Path, branch: str) -> bool:
    if (dst / "refs" / "heads" / branch).exists():
        return True
    packed = dst / "packed-refs"
    return packed.exists() and f"refs/heads/{branch}\n" in packed.read_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _watch_latency(env: Env, root: Path, count: int) -> list[float]:
    """Save -> applied times of EDITS edits of Mirror/r0001 among `count` resources."""
    specs, state = build(env, root, count)
    return watch_edits(env, root, specs, state)


def watch_edits(env: Env, root: Path, specs: Path, state: Path) -> list[float]:
    """Start a watcher over the built `root`, edit Mirror/r0001 EDITS times, time each."""
    destination = root / "dst" / "r0001.git"
    command = [
        *reconciler_command(specs, state, "watch"),
        "--listen",
        f"127.0.0.1:{_free_port()}",
        "--interval",
        "1h",
        "--log-format",
        "json",
    ]
    logged = root / "watch.log"
    with logged.open("wb") as sink:
        process = subprocess.Popen(
            command,
            env=env.vars,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,
        )
    try:
        _wait_for(lambda: b'"reconcile"' in logged.read_bytes(), 300)
        samples = []
        for index, branch in enumerate(BRANCHES):
            time.sleep(0.3)
            temporary = specs / ".r0001.yaml.tmp"
            text = _spec("r0001", root / "src" / "r0001.git", destination, BRANCHES[: index + 1])
            temporary.write_text(text)
            saved = time.monotonic()
            temporary.replace(specs / "r0001.yaml")  # an editor's atomic save
            _wait_for(lambda b=branch: _arrived(destination, b), 60)
            samples.append(time.monotonic() - saved)
        return samples
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.005)


def _watch_rows(env: Env, root: Path) -> list[dict[str, Any]]:
    """Row (c); the 1,000-resource set is kept for row (d)."""
    log(f"watch over {WATCHED} resources")
    specs, state = build(env, root / "many", WATCHED)
    many = watch_edits(env, root / "many", specs, state)
    log(f"  median {statistics.median(many):.3f} s; now over 2 resources")
    few = _watch_latency(env, root / "few", 2)
    return [
        row(
            f"incremental_watch_edit_of_{WATCHED}",
            statistics.median(few),
            statistics.median(many),
            None,
            f"save -> applied, median of {EDITS} edits of one spec among {WATCHED} resources "
            f"(target <= 0.2 s; p95 {sorted(many)[int(0.95 * len(many)) - 1]:.3f} s); "
            "baseline: the same with 2 resources",
        )
    ]


def _plan_rows(env: Env, root: Path, runs: int) -> list[dict[str, Any]]:
    """Row (d): no-op plan at each size and the exponent between the first and the last."""
    medians = []
    for size in PLAN_SIZES:
        log(f"no-op plan over {size} resources")
        built = root / str(size)
        if size == WATCHED and (root.parent / "watch" / "many" / "specs").exists():
            built = root.parent / "watch" / "many"  # row (c)'s set, in sync again
            specs, state = built / "specs", built / "state" / "reconciler.db"
            env.run(reconciler_command(specs, state, "apply", "--yes"))
        else:
            specs, state = build(env, built, size)
        plan = reconciler_command(specs, state, "plan")
        env.run(plan)
        medians.append(statistics.median(timed(lambda p=plan: env.run(p)) for _ in range(runs)))
    exponent = math.log(medians[-1] / medians[0]) / math.log(PLAN_SIZES[-1] / PLAN_SIZES[0])
    return [
        row(
            f"incremental_plan_{PLAN_SIZES[0]}_{PLAN_SIZES[-1]}",
            medians[0],
            medians[-1],
            None,
            f"no-op `plan` over {PLAN_SIZES[0]} (baseline column) and {PLAN_SIZES[-1]} "
            f"resources; exponent log(t{PLAN_SIZES[-1]}/t{PLAN_SIZES[0]})/log(size ratio) = "
            f"{exponent:.3f} (target <= 1.1)",
        )
    ]


def run() -> list[dict[str, Any]]:
    """Every row; data under a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as temporary:
        root = Path(temporary)
        env = Env(root)
        rows: list[dict[str, Any]] = []
        if "commit" in ROWS:
            rows += _commit_rows(env, root / "commit", RUNS)
        if "watch" in ROWS:
            rows += _watch_rows(env, root / "watch")
        if "plan" in ROWS:
            rows += _plan_rows(env, root / "plan", 3)
    return rows


if __name__ == "__main__":
    for found in run():
        print(found)
