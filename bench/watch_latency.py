"""watch_latency: how fast `reconciler watch` applies a saved spec, and what it costs idle.

- latency: 20 edits of a Mirror spec (each adds a branch to `branches`); the time from the
  save to the new branch at the destination. Baseline: a polling loop that runs
  `reconciler apply --yes` every second (a far tighter loop than Argo CD's default 180 s
  poll), measured the same way.
- idle CPU: user+system CPU of an idle watcher over 60 s, in % of one core; baseline: the
  same 1 s polling loop over the same 60 s.

Run: `python -m bench.watch_latency` (prints the rows; `run()` returns them).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import row

NAME = "watch_latency"
EDITS = 20
IDLE_SECONDS = 60.0
POLL = 1.0
BRANCHES = [f"b{n:02d}" for n in range(EDITS)]
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


def _git(*args: str | Path, cwd: Path | None = None) -> None:
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", *map(str, args)],
        cwd=cwd,
        check=True,
        capture_output=True,
        env={**os.environ, **_GIT_ENV},
    )


def _source(root: Path) -> Path:
    """A bare source with main and EDITS other branches."""
    work = root / "work"
    _git("init", "-q", work)
    (work / "f.txt").write_text("x\n")
    _git("add", "f.txt", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    for branch in BRANCHES:
        _git("branch", branch, cwd=work)
    src = root / "src.git"
    _git("clone", "-q", "--bare", work, src)
    return src


def _write(specs: Path, branches: list[str]) -> None:
    listed = ", ".join(f'"{b}"' for b in ["main", *branches])
    text = (
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: core}\nspec:\n"
        "  source: {url: ../src.git}\n  destinations: [{url: ../dst.git}]\n"
        f"  branches: [{listed}]\n"
    )
    temporary = specs / ".mirror.yaml.tmp"
    temporary.write_text(text)
    temporary.replace(specs / "mirror.yaml")  # an editor's atomic save


def _arrived(dst: Path, branch: str) -> bool:
    refs = dst / "refs" / "heads" / branch
    if refs.exists():
        return True
    packed = dst / "packed-refs"
    return packed.exists() and f"refs/heads/{branch}\n" in packed.read_text()


def _latencies(root: Path, command: list[str]) -> tuple[list[float], float]:
    """Start `command` (a reconciler loop) in root, make the edits, time each; idle CPU %."""
    specs, dst = root / "specs", root / "dst.git"
    specs.mkdir()
    _write(specs, [])
    process = subprocess.Popen(
        command,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait(lambda: _arrived(dst, "main"), 60)
        samples = []
        for index, branch in enumerate(BRANCHES):
            time.sleep(0.3)
            saved = time.monotonic()
            _write(specs, BRANCHES[: index + 1])
            _wait(lambda b=branch: _arrived(dst, b), 60)
            samples.append(time.monotonic() - saved)
        time.sleep(2)  # let the last apply settle before measuring idle
        cpu = _cpu_percent(process.pid, IDLE_SECONDS)
        return samples, cpu
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _wait(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the change to be applied")
        time.sleep(0.005)


def _cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its waited-for children (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_percent(pid: int, seconds: float) -> float:
    before, started = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100.0 * (_cpu_seconds(pid) - before) / (time.monotonic() - started)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run() -> list[dict[str, Any]]:
    """Measure both sides; rows {benchmark, baseline_s, reconciler_s, ratio, target, note}."""
    reconciler = [sys.executable, "-m", "reconciler"]
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as temporary:
        base = Path(temporary)
        (base / "w").mkdir()
        (base / "p").mkdir()
        _source(base / "w")
        _source(base / "p")
        watch = [*reconciler, "watch", "--listen", f"127.0.0.1:{_free_port()}"]
        ours, our_cpu = _latencies(base / "w", watch)
        apply = f"{' '.join(reconciler)} apply --yes >/dev/null 2>&1"
        loop = f"while true; do {apply}; sleep {POLL:g}; done"
        theirs, their_cpu = _latencies(base / "p", ["bash", "-c", loop])
    return [
        row(
            "watch_latency_median",
            statistics.median(theirs),
            statistics.median(ours),
            1.0,
            "save-to-applied, median of 20 edits; baseline: `apply --yes` polled every 1 s",
        ),
        row(
            "watch_latency_p95",
            _p95(theirs),
            _p95(ours),
            1.0,
            "save-to-applied, p95 of 20 edits (target: reconciler under 1 s)",
        ),
        row(
            "watch_idle_cpu_percent",
            their_cpu,
            our_cpu,
            2.0,
            f"% of one core over {IDLE_SECONDS:g} s idle (not seconds); baseline: 1 s poll loop",
        ),
    ]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(0.95 * len(ordered) + 0.999) - 1)]


if __name__ == "__main__":
    for found in run():
        print(found)
