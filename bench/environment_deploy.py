"""environment_deploy: a 2,000-file tree deployed as a new release and switched to.

reconciler runs `apply` on an Environment whose ref moved from v1 to v2 (warm object cache,
release 1 current); the baseline exports the same commit with `git archive | tar -x` into a
new directory and points the link at it with `ln -sfn`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.common import Env, Result, alternate, log, reconciler_command, remove

NAME = "environment_deploy"
FILES = 2000
TARGET = 10.0  # no target in the issue: reported, with the absolute times, to watch it


def run(root: Path, runs: int = 5) -> Result:
    """Build a 2,000-file repository with tags v1 and v2, then time both sides."""
    env = Env(root)
    work = root / "app"
    log(f"building a repository of {FILES} files")
    env.git("init", "--quiet", str(work))
    for n in range(FILES):
        path = work / f"pkg{n % 40:02d}" / f"module{n:04d}.py"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"# module {n}\nVALUE = {n}\n" + "x = 1\n" * 40)
    env.git("add", "-A", cwd=work)
    env.git("commit", "--quiet", "-m", "v1", cwd=work)
    env.git("tag", "v1", cwd=work)
    for n in range(0, FILES, 20):  # 5% of the files change in v2
        (work / f"pkg{n % 40:02d}" / f"module{n:04d}.py").write_text(f"VALUE = {n + 1}\n")
    env.git("commit", "--quiet", "-am", "v2", cwd=work)
    env.git("tag", "v2", cwd=work)

    specs, state_dir, deploy = root / "specs", root / "state", root / "deploy"
    spec = specs / "env.yaml"
    specs.mkdir()

    def write_spec(ref: str) -> None:
        spec.write_text(
            "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: production}\n"
            f"spec:\n  source: {{repo: {work}, ref: {ref}}}\n  target: {{path: {deploy}}}\n"
        )

    apply = reconciler_command(specs, state_dir / "reconciler.db", "apply", "--yes")
    write_spec("v1")
    env.run(apply)  # release 1 current, cache warm: the pristine starting point
    pristine = root / "pristine"
    for part in (state_dir, deploy):
        shutil.copytree(part, pristine / part.name, symlinks=True)
    write_spec("v2")
    baseline_dir = root / "baseline"
    commit = env.git("rev-parse", "v2^{commit}", cwd=work).strip()

    def restore() -> None:
        for part in (state_dir, deploy):
            remove(part)
            shutil.copytree(pristine / part.name, part, symlinks=True)

    def reset_baseline() -> None:
        remove(baseline_dir)
        (baseline_dir / "releases" / "2").mkdir(parents=True)

    def baseline() -> None:
        archive = env.run(["git", "-C", work, "archive", "--format=tar", commit]).stdout
        env.run(
            ["tar", "-x", "-m", "-f", "-", "-C", baseline_dir / "releases" / "2"], stdin=archive
        )
        env.run(["ln", "-sfn", "releases/2", baseline_dir / "current"])

    def check() -> None:
        version = (deploy / "current" / "pkg00" / "module0000.py").read_text()
        if version != "VALUE = 1\n":
            raise RuntimeError("current does not run v2")

    base, rec = alternate(
        runs,
        baseline,
        lambda: env.run(apply),
        before_baseline=reset_baseline,
        before_reconciler=restore,
        after_reconciler=check,
    )
    return Result(
        name=NAME,
        description=f"{FILES} files, v1 current, deploy v2 as a new release and switch",
        target=TARGET,
        baseline=base,
        reconciler=rec,
        baseline_commands=[
            f"git -C {work} archive --format=tar {commit} | tar -x -m -f - -C releases/2",
            "ln -sfn releases/2 current",
        ],
        reconciler_commands=[f"# spec ref v1 -> v2; then: {' '.join(apply)}"],
        notes=[
            "reconciler also resolves the ref, writes a manifest of the release (git blob "
            "ids of the files, for drift), records the release in the store"
        ],
    )
