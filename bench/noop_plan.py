"""noop_plan: `reconciler plan` over 100 repos x 3 destinations that are all in sync.

Baseline: what a shell script needs to learn the same thing, one `git ls-remote` per
repository (100 sources + 300 destinations), sequentially.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    Env,
    Result,
    alternate,
    log,
    reconciler_command,
    shell,
    small_repo,
    write_org_mirror,
)

NAME = "noop_plan"
TARGET = 0.3
REPOS = 100
DESTINATIONS = 3


def build(env: Env, root: Path, repos: int = REPOS) -> tuple[list[str], Path, list[Path]]:
    """Sources under root/src, in-sync mirrors under root/d1..d3; returns names, src, dests."""
    names = [f"r{n:03d}" for n in range(repos)]
    src = root / "src"
    dests = [root / f"d{n + 1}" for n in range(DESTINATIONS)]
    for directory in (src, *dests):
        directory.mkdir(parents=True)
    for seed, name in enumerate(names):
        small_repo(env, src / f"{name}.git", seed)
        for dest in dests:
            env.git("clone", "--quiet", "--mirror", src / f"{name}.git", dest / f"{name}.git")
    return names, src, dests


def run(root: Path, runs: int = 7) -> Result:
    """Build the data under `root`, then time both sides `runs` times each."""
    env = Env(root)
    log(f"building {REPOS} sources and {REPOS * DESTINATIONS} mirrors")
    names, src, dests = build(env, root)
    specs, state = root / "specs", root / "state" / "reconciler.db"
    write_org_mirror(specs, f"{src}/{{repo}}.git", [f"{d}/{{repo}}.git" for d in dests], names)

    # One apply records the (already in-sync) resource, as after a real first apply;
    # then the plan must find nothing to do.
    log("first apply (records the in-sync resource)")
    env.run(reconciler_command(specs, state, "apply", "--yes"))
    check = env.run(reconciler_command(specs, state, "plan", "--detailed-exitcode"), check=False)
    if check.returncode != 0:
        raise RuntimeError(f"the setup is not in sync: {check.stdout.decode()[-2000:]}")

    plan = reconciler_command(specs, state, "plan")
    repos = [src / f"{n}.git" for n in names] + [d / f"{n}.git" for d in dests for n in names]

    def baseline() -> None:
        for repo in repos:
            env.run(["git", "ls-remote", repo])

    def reconciler() -> None:
        env.run(plan)

    base, rec = alternate(runs, baseline, reconciler)
    return Result(
        name=NAME,
        description=f"{REPOS} repos x {DESTINATIONS} destinations in sync",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            f"for repo in {src}/r0{{00..99}}.git {root}/d{{1,2,3}}/r0{{00..99}}.git; do",
            "  git ls-remote $repo",
            f"done   # {len(repos)} processes, sequential",
        ],
        reconciler_commands=[shell(plan) + "   # parallelism 4 (default)"],
    )
