"""incremental_sync: 3 new commits on main in each of 50 sources, pushed to 3 destinations each.

Both sides start every timed run from the same snapshot, restored untimed: destinations
at the old tips, and a warm cache holding the old objects (reconciler's `state/cache`,
filled by the setup apply; the baseline's `git clone --mirror` of each source, made at the
same point). The sources carry the same new commits for both.

Baseline: per repository, sequentially, `git fetch` into its mirror clone, then one
`git push` of the changed ref to each of the 3 destinations.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import (
    Env,
    Result,
    add_commits,
    alternate,
    log,
    read_ref,
    reconciler_command,
    replace_tree,
    shell,
    small_repo,
    timed,
    write_org_mirror,
)

NAME = "incremental_sync"
TARGET = 0.7
REPOS = 50
DESTINATIONS = 3
NEW_COMMITS = 3
CHANGED_REF = "refs/heads/main"


def run(root: Path, runs: int = 5) -> Result:
    """Build the data under `root`, then time both sides `runs` times each."""
    env = Env(root)
    names = [f"r{n:03d}" for n in range(REPOS)]
    src = root / "src"
    work = root / "work"  # restored from `pristine` before every timed run
    pristine = root / "pristine"
    dests = [work / f"d{n + 1}" for n in range(DESTINATIONS)]
    mirrors = work / "baseline-cache"
    specs, state = root / "specs", work / "state" / "reconciler.db"
    log(f"building {REPOS} sources")
    src.mkdir(parents=True)
    mirrors.mkdir(parents=True)
    for seed, name in enumerate(names):
        small_repo(env, src / f"{name}.git", 1000 + seed)
    write_org_mirror(specs, f"{src}/{{repo}}.git", [f"{d}/{{repo}}.git" for d in dests], names)

    # The in-sync starting point: reconciler creates the destinations and fills its cache,
    # the baseline gets its mirror clones of the same source state.
    log("first apply (creates the destinations, fills the cache), baseline mirror clones")
    env.run(reconciler_command(specs, state, "apply", "--yes"))
    for name in names:
        env.git("clone", "--quiet", "--mirror", src / f"{name}.git", mirrors / f"{name}.git")
    check = env.run(reconciler_command(specs, state, "plan", "--detailed-exitcode"), check=False)
    if check.returncode != 0:
        raise RuntimeError(f"the setup is not in sync: {check.stdout.decode()[-2000:]}")
    # Settle every repository of the snapshot as a maintained server would (one pack, packed
    # refs): the same for both sides, and far fewer files to restore before each run.
    repos = sorted(head.parent for head in work.glob("**/*.git/HEAD"))
    log(f"git gc in the {len(repos)} repositories of the snapshot")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda repo: env.git("gc", "--quiet", cwd=repo), repos))
    work.rename(pristine)

    log(f"adding {NEW_COMMITS} commits to every source")
    for name in names:
        add_commits(env, src / f"{name}.git", NEW_COMMITS, "incremental")
    wanted = {name: read_ref(src / f"{name}.git", CHANGED_REF) for name in names}

    def restore() -> None:
        log(f"restoring the snapshot: {timed(lambda: replace_tree(pristine, work)):.1f} s")

    def verify() -> None:
        for name in names:
            for dest in dests:
                got = read_ref(dest / f"{name}.git", CHANGED_REF)
                if got != wanted[name]:
                    where = dest / f"{name}.git"
                    raise RuntimeError(f"{where}: {CHANGED_REF} is {got}, not {wanted[name]}")

    refspec = f"{CHANGED_REF}:{CHANGED_REF}"

    def baseline() -> None:
        for name in names:
            mirror = mirrors / f"{name}.git"
            env.run(["git", "-C", mirror, "fetch", "--quiet", "--prune", "origin"])
            for dest in dests:
                env.run(["git", "-C", mirror, "push", "--quiet", dest / f"{name}.git", refspec])

    apply = reconciler_command(specs, state, "apply", "--yes")

    def reconciler() -> None:
        env.run(apply)  # exits 1 unless every action succeeded; verify() checks the refs

    base, rec = alternate(
        runs,
        baseline,
        reconciler,
        before_baseline=restore,
        before_reconciler=restore,
        after_baseline=verify,
        after_reconciler=verify,
        warmup=False,  # the setup already ran both (apply, plan, clones): no cold start left
    )
    return Result(
        name=NAME,
        description=f"{NEW_COMMITS} new commits on main in {REPOS} repos x {DESTINATIONS} "
        "destinations, warm caches",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            f"# beforehand: git clone --mirror {src}/$repo.git {mirrors}/$repo.git",
            f"for repo in r0{{00..49}}; do   # {REPOS * (1 + DESTINATIONS)} processes, sequential",
            f"  git -C {mirrors}/$repo.git fetch --quiet --prune origin",
            f"  for d in {work}/d1 {work}/d2 {work}/d3; do",
            f"    git -C {mirrors}/$repo.git push --quiet $d/$repo.git {refspec}",
            "  done",
            "done",
        ],
        reconciler_commands=[
            f"# beforehand: {shell(apply)} (creates the destinations, fills the cache)",
            shell(apply) + "   # parallelism 4 (default)",
        ],
        notes=[f"every run starts from the same snapshot ({pristine}), restored untimed"],
    )
