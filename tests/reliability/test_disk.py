"""A full or read-only state directory (issue 6): a clear error, nothing corrupted.

The state directory is a small tmpfs mount, filled up with a file or remounted read-only.
(As root, chmod would not stop a write; mounting needs root, so elsewhere these skip.)
Each fault must end in exit 1 with one line naming the path and no traceback; the store
must pass `PRAGMA integrity_check` with every earlier row intact; once the fault is gone,
a re-run converges and the next plan is empty.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.conftest import CliResult, Workspace
from tests.gitservers import WorkRepo, make_bare, refs_of
from tests.reliability.report import record

MOUNT_SIZE = 32 << 20
BLOB = 1_500_000  # a new commit's incompressible file: more than the cache can take when full


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@contextmanager
def _tmpfs(directory: Path) -> Iterator[Path]:
    """`directory` on its own small tmpfs (skips the test where mounting is not allowed)."""
    directory.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = _mount("-t", "tmpfs", "-o", f"size={MOUNT_SIZE}", "tmpfs", str(directory))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


@pytest.fixture
def state_fs(ws: Workspace) -> Iterator[Path]:
    """The workspace's state directory on its own small tmpfs."""
    with _tmpfs(ws.state.parent) as state:
        yield state


class Mirrors:
    """A source with two mirrors to destinations outside the state directory."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.source = make_bare(ws.root / "src.git")
        self.work = WorkRepo.create(ws.root / "work", self.source)
        self.destinations = [ws.root / "dst" / f"d{i}.git" for i in range(2)]
        ws.write_spec(
            "mirrors.yaml",
            "---\n".join(
                f"""
                apiVersion: reconciler/v1
                kind: Mirror
                metadata: {{name: m{i}}}
                spec:
                  source: {{url: {self.source}}}
                  destinations: [{{url: {dest}}}]
                """
                for i, dest in enumerate(self.destinations)
            ),
        )
        self.commit("c0", 1000)
        first = ws.run("apply", "--yes")
        assert first.code == 0, first.output

    def commit(self, label: str, size: int = BLOB) -> None:
        self.work.commit(label, {f"{label}.bin": os.urandom(size)})
        self.work.push(self.source, "main:main")

    def converge(self) -> None:
        again = self.ws.run("apply", "--yes")
        assert again.code == 0, again.output
        plan = self.ws.run("plan", "--detailed-exitcode")
        assert plan.code == 0, plan.output
        for dest in self.destinations:
            assert refs_of(dest) == refs_of(self.source)


def _rows(state: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the tables an apply writes; the store must pass its integrity check."""
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        tables = ("revisions", "resources", "history", "journal")
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in tables}


def _kept(before: dict[str, list[tuple[object, ...]]], state: Path) -> bool:
    """Every revision and history row written before is still there, unchanged."""
    after = _rows(state)
    return all(after[t][: len(before[t])] == before[t] for t in ("revisions", "history"))


def _fill(directory: Path, leave: int) -> Path:
    """Fill the file system of `directory`, then give back `leave` bytes."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def _one_clear_error(result: CliResult, *needles: str) -> str:
    """Exit 1, no traceback, and an error line holding every needle (a needle may be a
    tuple of alternatives)."""
    assert result.code == 1, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    errors = [ln for ln in result.output.splitlines() if ln.startswith(("error:", "failed "))]

    def holds(line: str, needle: str | tuple[str, ...]) -> bool:
        return any(n in line for n in ((needle,) if isinstance(needle, str) else needle))

    found = [ln for ln in errors if all(holds(ln, n) for n in needles)]
    assert found, result.output
    return found[0]


def _partial_fetch(state: Path, tip: str) -> bool:
    """True when a cache holds `tip` without everything below it (a fetch cut short)."""
    for cache in (state / "cache" / "mirror").glob("*.git"):
        has = subprocess.run(["git", "-C", str(cache), "cat-file", "-e", tip], check=False)
        walk = ["git", "-C", str(cache), "rev-list", "--objects", "--quiet", tip, "--not", "--all"]
        whole = subprocess.run(walk, capture_output=True, check=False)
        if has.returncode == 0 and whole.returncode != 0:
            return True
    return False


# Free space left on the state file system when the apply starts.
LEVELS = {
    "nothing left": 0,  # the store cannot even open its write-ahead log
    "room for the store only": 128 << 10,  # a fetch into the cache fails, then the store
    "room for most of the fetch": 1200 << 10,
}
FULL = ("is full", "No space left on device")


def test_a_full_state_directory_fails_clearly_and_corrupts_nothing(
    ws: Workspace, state_fs: Path
) -> None:
    started = time.monotonic()
    mirrors = Mirrors(ws)
    seen: dict[str, str] = {}
    partial = 0
    for label, leave in LEVELS.items():
        before = _rows(ws.state)
        mirrors.commit(f"full-{leave}")
        filler = _fill(state_fs, leave)
        try:
            result = ws.run("apply", "--yes")
        finally:
            filler.unlink()
        seen[label] = _one_clear_error(result, str(state_fs), FULL)
        assert _kept(before, ws.state), label
        # A fetch cut short by the full disk may leave the new commit without its blob: the
        # re-run must fetch it again, not push a broken pack ("unpacker error").
        partial += _partial_fetch(state_fs, mirrors.work.rev("HEAD"))
        mirrors.converge()
    assert partial >= 1  # the hazard was really there
    record(
        "faults: full state directory",
        time.monotonic() - started,
        faults_injected=len(LEVELS),
        failed_clearly=len(seen),
        partial_fetches_repaired=partial,
        corrupted=0,
        converged=len(LEVELS),
    )


def test_a_read_only_state_directory_fails_clearly_and_corrupts_nothing(
    ws: Workspace, state_fs: Path
) -> None:
    started = time.monotonic()
    mirrors = Mirrors(ws)
    before = _rows(ws.state)
    mirrors.commit("ro")
    remounted = _mount("-o", "remount,ro", str(state_fs))
    if remounted.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {remounted.stderr.strip()}")
    try:
        for command in (("apply", "--yes"), ("plan",)):
            result = ws.run(*command)
            _one_clear_error(result, str(ws.state), "read-only file system")
        # status only reads (issue 12, item 14): it opens the store read-only and says what
        # it could not observe (the new commit cannot be fetched into the cache).
        status = ws.run("status")
        assert status.code == 0 and "Read-only file system" in status.stdout, status.output
        assert "Synced" not in status.stdout
    finally:
        assert _mount("-o", "remount,rw", str(state_fs)).returncode == 0
    assert _kept(before, ws.state)
    mirrors.converge()
    record(
        "faults: read-only state directory",
        time.monotonic() - started,
        faults_injected=1,
        commands_refused_clearly=2,
        corrupted=0,
        converged=1,
    )


def test_a_full_release_directory_fails_clearly_and_keeps_the_current_release(
    ws: Workspace,
) -> None:
    started = time.monotonic()
    origin = make_bare(ws.root / "app.git")
    app = WorkRepo.create(ws.root / "app", origin)
    app.commit("small", {"app.txt": "v1\n"})
    app.push(origin, "main:main")
    with _tmpfs(ws.root / "deploy") as deploy:
        ws.write_spec(
            "env.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: Environment
            metadata: {{name: prod}}
            spec:
              source: {{repo: {origin}, ref: main}}
              target: {{path: {deploy}}}
            """,
        )
        first = ws.run("apply", "--yes")
        assert first.code == 0, first.output
        current = (deploy / "current").resolve()
        before = _rows(ws.state)
        app.commit("big", {"big.bin": os.urandom(BLOB)})
        app.push(origin, "main:main")
        filler = _fill(deploy, 256 << 10)
        try:
            result = ws.run("apply", "--yes")
        finally:
            filler.unlink()
        line = _one_clear_error(result, "Environment/prod", FULL, f"{deploy}/releases")
        assert line.startswith("failed "), line
        assert (deploy / "current").resolve() == current and (current / "app.txt").exists()
        assert _kept(before, ws.state)
        # Read-only now: the release directory cannot even be created.
        assert _mount("-o", "remount,ro", str(deploy)).returncode == 0
        try:
            result = ws.run("apply", "--yes")
        finally:
            assert _mount("-o", "remount,rw", str(deploy)).returncode == 0
        line = _one_clear_error(result, "Environment/prod", "Read-only file system", str(deploy))
        assert line.startswith("failed "), line
        assert (deploy / "current").resolve() == current
        again = ws.run("apply", "--yes")
        assert again.code == 0, again.output
        assert (deploy / "current" / "big.bin").stat().st_size == BLOB
        plan = ws.run("plan", "--detailed-exitcode")
        assert plan.code == 0, plan.output
    record(
        "faults: full or read-only release directory",
        time.monotonic() - started,
        faults_injected=2,
        failed_clearly=2,
        current_kept=1,
        converged=1,
    )
