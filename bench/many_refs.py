"""many_refs: one repository with 10,000 refs (9,000 branches, 1,000 annotated tags).

Two benchmarks share the data:

- `many_refs_create`: the 10,000 refs to a destination that does not exist. Baseline:
  `git init --bare` and `git push --mirror` from a mirror clone of the source. reconciler
  runs with a warm cache (the setup apply filled it), so both sides start from the objects.
- `many_refs_update`: the destination holds all 10,000 refs and 100 branches of the source
  get a new commit. Baseline: a plain `git push` of those 100 refspecs from a mirror clone
  made after the change (untimed: the plain push alone, as the target says).
  reconciler's apply also fetches the new commits into its cache and lists both sides.

Every timed run starts from the same snapshot, restored untimed.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.common import (
    Env,
    Result,
    alternate,
    log,
    many_refs_repo,
    reconciler_command,
    refs_of,
    remove,
    replace_tree,
    shell,
    timed,
    write_org_mirror,
)

NAME_CREATE = "many_refs_create"
NAME_UPDATE = "many_refs_update"
TARGET = 2.0
BRANCHES = int(os.environ.get("BENCH_MANY_REFS_BRANCHES", "9000"))
TAGS = BRANCHES // 9
CHANGED = 100


class _Data:
    """The source, a mirror clone of it, and reconciler's spec and state under `root`."""

    def __init__(self, root: Path) -> None:
        self.env = Env(root)
        self.source = root / "src" / "many.git"
        self.work = root / "work"  # restored from `pristine` before every timed run
        self.pristine = root / "pristine"
        self.mirror = self.work / "baseline-cache" / "many.git"
        self.dest = self.work / "d1" / "many.git"
        self.specs, self.state_dir = root / "specs", self.work / "state"
        self.state = self.state_dir / "reconciler.db"
        log(f"building a source with {BRANCHES} branches and {TAGS} tags")
        many_refs_repo(self.env, self.source, BRANCHES, TAGS)
        self.refs = refs_of(self.env, self.source)
        write_org_mirror(
            self.specs,
            f"{self.source.parent}/{{repo}}.git",
            [f"{self.dest.parent}/{{repo}}.git"],
            ["many"],
        )
        self.apply = reconciler_command(self.specs, self.state, "apply", "--yes")

    def setup(self) -> None:
        """reconciler creates the destination and fills its cache."""
        log("first apply (creates the destination, fills the cache)")
        self.env.run(self.apply)
        check = self.env.run(
            reconciler_command(self.specs, self.state, "plan", "--detailed-exitcode"), check=False
        )
        if check.returncode != 0:
            raise RuntimeError(f"the setup is not in sync: {check.stdout.decode()[-2000:]}")

    def snapshot(self) -> None:
        """The baseline's mirror clone of the source as it is now; the repositories settled
        as a maintained server's (packed refs); the whole kept as the snapshot."""
        self.env.git("clone", "--quiet", "--mirror", self.source, self.mirror)
        for repo in (self.dest, self.mirror):
            if repo.exists():
                self.env.git("gc", "--quiet", cwd=repo)
        self.work.rename(self.pristine)

    def restore(self) -> None:
        log(
            f"restoring the snapshot: {timed(lambda: replace_tree(self.pristine, self.work)):.1f} s"
        )

    def verify(self, expected: dict[str, str]) -> None:
        if refs_of(self.env, self.dest) != expected:
            raise RuntimeError(f"{self.dest} does not hold the source's refs")


def run_create(root: Path, runs: int = 3) -> Result:
    """10,000 refs to a new destination: reconciler vs `git push --mirror`."""
    data = _Data(root)
    data.setup()
    remove(data.dest)
    data.snapshot()
    env, dest = data.env, data.dest

    def baseline() -> None:
        env.run(["git", "init", "--quiet", "--bare", dest])
        env.run(["git", "-C", data.mirror, "push", "--quiet", "--mirror", dest])

    def reconciler() -> None:
        env.run(data.apply)

    base, rec = alternate(
        runs,
        baseline,
        reconciler,
        before_baseline=data.restore,
        before_reconciler=data.restore,
        after_baseline=lambda: data.verify(data.refs),
        after_reconciler=lambda: data.verify(data.refs),
        warmup=False,  # the setup already ran reconciler; git's side reads a warm snapshot
    )
    return Result(
        name=NAME_CREATE,
        description=f"{len(data.refs)} refs to a destination that does not exist, warm cache",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            f"git init --quiet --bare {dest}",
            f"git -C {data.mirror} push --quiet --mirror {dest}",
        ],
        reconciler_commands=[
            f"# beforehand: {shell(data.apply)} (fills the cache), then rm -rf {dest.parent}",
            shell(data.apply),
        ],
        notes=[f"every run starts from the same snapshot ({data.pristine}), restored untimed"],
    )


def run_update(root: Path, runs: int = 3) -> Result:
    """100 of 10,000 refs moved: reconciler vs a plain push of those 100."""
    data = _Data(root)
    data.setup()
    env, dest = data.env, data.dest
    changed = sorted(r for r in data.refs if r.startswith("refs/heads/"))[:: BRANCHES // CHANGED]
    log(f"adding a commit to {len(changed)} branches of the source")
    many_refs_repo(env, data.source, 0, 0, advance=changed)
    expected = refs_of(env, data.source)
    data.snapshot()  # the baseline's clone holds the new commits: it times the push alone
    refspecs = [f"{ref}:{ref}" for ref in changed]

    def baseline() -> None:
        env.run(["git", "-C", data.mirror, "push", "--quiet", dest, *refspecs])

    def reconciler() -> None:
        env.run(data.apply)

    base, rec = alternate(
        runs,
        baseline,
        reconciler,
        before_baseline=data.restore,
        before_reconciler=data.restore,
        after_baseline=lambda: data.verify(expected),
        after_reconciler=lambda: data.verify(expected),
        warmup=False,  # the setup already ran reconciler; git's side reads a warm snapshot
    )
    return Result(
        name=NAME_UPDATE,
        description=f"{len(changed)} of {len(expected)} refs moved (a new commit each), warm cache",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            f"# beforehand: git clone --mirror {data.source} {data.mirror} (new commits in)",
            f"git -C {data.mirror} push --quiet {dest} {changed[0]}:{changed[0]} ... "
            f"# {len(changed)} refspecs",
        ],
        reconciler_commands=[shell(data.apply) + "   # fetches the new commits into its cache"],
        notes=[f"every run starts from the same snapshot ({data.pristine}), restored untimed"],
    )
