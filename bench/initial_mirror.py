"""initial_mirror: one 5,000-commit repository mirrored to 3 destinations that do not exist.

reconciler starts with an empty state directory (no cache) and creates the destinations;
the baseline clones a mirror, then creates and pushes each destination in turn.
"""

from __future__ import annotations

from pathlib import Path

from bench.common import (
    Env,
    Result,
    alternate,
    big_repo,
    count_commits,
    log,
    reconciler_command,
    refs_of,
    remove,
    shell,
    write_org_mirror,
)

NAME = "initial_mirror"
TARGET = 1.2
DESTINATIONS = 3


def run(root: Path, runs: int = 5) -> Result:
    """Build the data under `root`, then time both sides `runs` times each."""
    env = Env(root)
    src = root / "src"
    source = src / "big.git"
    log("building the source with git fast-import")
    big_repo(env, source)
    commits = count_commits(env, source)
    expected = refs_of(env, source)
    dests = [root / f"d{n + 1}" for n in range(DESTINATIONS)]
    cache = root / "baseline-cache" / "big.git"
    state_dir = root / "state"
    specs, state = root / "specs", state_dir / "reconciler.db"
    write_org_mirror(specs, f"{src}/{{repo}}.git", [f"{d}/{{repo}}.git" for d in dests], ["big"])

    def reset() -> None:
        remove(cache.parent, state_dir, *dests)

    def verify() -> None:
        for dest in dests:
            got = refs_of(env, dest / "big.git")
            if got != expected:
                raise RuntimeError(f"{dest}/big.git does not mirror the source")

    def baseline() -> None:
        env.run(["git", "clone", "--quiet", "--mirror", source, cache])
        for dest in dests:
            env.run(["git", "init", "--quiet", "--bare", dest / "big.git"])
            env.run(["git", "-C", cache, "push", "--quiet", "--mirror", dest / "big.git"])

    apply = reconciler_command(specs, state, "apply", "--yes")

    def reconciler() -> None:
        env.run(apply)

    base, rec = alternate(
        runs,
        baseline,
        reconciler,
        before_baseline=reset,
        before_reconciler=reset,
        after_baseline=verify,
        after_reconciler=verify,
    )
    pack_bytes = sum(p.stat().st_size for p in (source / "objects" / "pack").glob("*.pack"))
    return Result(
        name=NAME,
        description=f"{commits} commits, {len(expected)} refs, "
        f"{pack_bytes / 2**20:.1f} MiB pack, to {DESTINATIONS} new destinations",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            shell(["git", "clone", "--quiet", "--mirror", source, cache])
            + "   # local path: objects hardlinked",
            f"for d in {' '.join(str(d) for d in dests)}; do",
            "  git init --quiet --bare $d/big.git",
            f"  git -C {cache} push --quiet --mirror $d/big.git",
            "done",
        ],
        reconciler_commands=[
            f"rm -rf {state_dir} {' '.join(str(d) for d in dests)}",
            shell(apply) + "   # parallelism 4 (default)",
        ],
    )
