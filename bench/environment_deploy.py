"""environment_deploy, environment_deploy_watch: a 2,000-file tree deployed as a new
release and switched to.

environment_deploy: reconciler runs `apply` in a fresh process on an Environment whose ref
moved from v1 to v2 (warm object cache, release 1 current). environment_deploy_watch: a
running `reconciler watch` picks up the spec edit of the ref and deploys (start-up not
counted). The baseline of both exports the same commit with `git archive | tar -x` into a
new directory and points the link at it with `ln -sfn`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import Env, Result, alternate, log, reconciler_command, remove

NAME = "environment_deploy"
NAME_WATCH = "environment_deploy_watch"
FILES = 2000
TARGET = 3.0  # issue 14: a fresh process, start-up included
TARGET_WATCH = 1.5  # issue 14: inside a running watcher


@dataclass(frozen=True)
class _Data:
    """The repository with tags v1 and v2, and where the environment goes."""

    env: Env
    work: Path
    specs: Path
    state: Path
    deploy: Path

    def write_spec(self, ref: str) -> None:
        """The Environment spec deploying `ref` (an editor's atomic save)."""
        text = (
            "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: production}\n"
            f"spec:\n  source: {{repo: {self.work}, ref: {ref}}}\n"
            f"  target: {{path: {self.deploy}}}\n"
        )
        temporary = self.specs / ".env.yaml.tmp"
        temporary.write_text(text)
        temporary.replace(self.specs / "env.yaml")

    def commit(self, ref: str) -> str:
        """The commit a tag names."""
        return self.env.git("rev-parse", f"{ref}^{{commit}}", cwd=self.work).strip()


def _build(root: Path) -> _Data:
    """A 2,000-file repository with tags v1 and v2 (5% of the files differ)."""
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
    data = _Data(env, work, root / "specs", root / "state", root / "deploy")
    data.specs.mkdir()
    return data


def _exporter(
    data: _Data, commit: str, into: Path
) -> tuple[Callable[[], None], Callable[[], None]]:
    """The baseline (export `commit` into a new release directory of `into`, point the
    link at it) and its untimed reset."""

    def reset() -> None:
        remove(into)
        (into / "releases" / "2").mkdir(parents=True)

    def baseline() -> None:
        data.env.run(["sh", "-c", " && ".join(_baseline_commands(data, commit))], cwd=into)

    return baseline, reset


def _baseline_commands(data: _Data, commit: str) -> list[str]:
    return [
        f"git -C {data.work} archive --format=tar {commit} | tar -x -m -f - -C releases/2",
        "ln -sfn releases/2 current",
    ]


def run(root: Path, runs: int = 5) -> Result:
    """Build a 2,000-file repository with tags v1 and v2, then time both sides."""
    data = _build(root)
    env, state_dir, deploy = data.env, data.state, data.deploy
    apply = reconciler_command(data.specs, state_dir / "reconciler.db", "apply", "--yes")
    data.write_spec("v1")
    env.run(apply)  # release 1 current, cache warm: the pristine starting point
    pristine = root / "pristine"
    shutil.copytree(state_dir, pristine / state_dir.name)
    kept = {p.name for p in [*(deploy / "releases").iterdir(), *(deploy / ".reconciler").iterdir()]}
    link = os.readlink(deploy / "current")
    data.write_spec("v2")
    commit = data.commit("v2")
    baseline, reset_baseline = _exporter(data, commit, root / "baseline")

    def restore() -> None:
        """Back to release 1 current: the store copied back; in the environment, what the
        deploy added removed, so that release 1 stays the files it was deployed as (a copy
        would give them new inodes, and the next drift check would hash them all)."""
        remove(state_dir)
        shutil.copytree(pristine / state_dir.name, state_dir)
        for part in ("releases", ".reconciler"):
            remove(*(p for p in (deploy / part).iterdir() if p.name not in kept))
        (deploy / "current").unlink()
        os.symlink(link, deploy / "current")

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
        baseline_commands=_baseline_commands(data, commit),
        reconciler_commands=[f"# spec ref v1 -> v2; then: {' '.join(apply)}"],
        notes=[
            "a fresh process: start-up, spec loading, ref resolution, drift check of the "
            "current release, export, manifest (git's blob ids), store records",
        ],
    )


def run_watch(root: Path, runs: int = 7) -> Result:
    """The same deploy inside a running `reconciler watch`: the spec's ref edited (v1 to v2,
    then back, each edit a new release), timed from the save until `current` runs the new
    release and its manifest is written (so start-up is not counted)."""
    data = _build(root)
    state = data.state / "reconciler.db"
    watch = reconciler_command(data.specs, state, "watch", "--listen", "off", "--interval", "1h")
    data.write_spec("v1")
    commits = {"v1": data.commit("v1"), "v2": data.commit("v2")}
    baseline, reset_baseline = _exporter(data, commits["v2"], root / "baseline")
    output = (root / "watch.log").open("wb")
    process = subprocess.Popen(
        [os.fspath(a) for a in watch],
        env=data.env.vars,
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    refs = ["v1"]

    def running(ref: str) -> bool:
        """`current` runs a release of `ref` (other than one it ran before the edit) and
        its manifest is written."""
        target = data.deploy / "current"
        try:
            name = Path(os.readlink(target)).name
        except OSError:
            return False
        done = data.deploy / ".reconciler" / f"{name}.json"
        return name not in seen and name.split("-", 1)[-1] == commits[ref][:7] and done.exists()

    seen: set[str] = set()

    def edit_and_wait() -> None:
        ref = "v2" if refs[-1] == "v1" else "v1"
        refs.append(ref)
        data.write_spec(ref)
        _wait(lambda: running(ref), 120, process)

    def settle() -> None:
        """Untimed: let the watcher finish recording (and pruning) the last deploy, so that
        it does not run alongside the next baseline."""
        time.sleep(1.5)
        seen.update(p.name for p in (data.deploy / "releases").iterdir())

    try:
        _wait(lambda: running("v1"), 120, process)  # release 1, cache warm
        settle()
        base, rec = alternate(
            runs,
            baseline,
            edit_and_wait,
            before_baseline=reset_baseline,
            after_reconciler=settle,
        )
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        output.close()
    return Result(
        name=NAME_WATCH,
        description=f"{FILES} files deployed by a running watcher after a spec edit of the ref",
        target=TARGET_WATCH,
        baseline=base,
        reconciler=rec,
        baseline_commands=_baseline_commands(data, commits["v2"]),
        reconciler_commands=[
            f"{' '.join(watch)} &",
            "# then, each run: the spec's ref edited (v1 -> v2, v2 -> v1, ...), timed until "
            "`current` runs the new release and its manifest exists",
        ],
        notes=["the watcher's own trigger latency (file event, debounce) is included"],
    )


def _wait(condition: Callable[[], bool], timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise RuntimeError(f"the watcher exited ({process.returncode}); see watch.log")
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the deploy")
        time.sleep(0.002)
