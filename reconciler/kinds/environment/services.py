"""The processes a release's hooks left running (its services), so that verify stops
waiting for a service that has already exited.

Every hook runs with RECONCILER_RELEASE_DIR in its environment and its children inherit
it, even when they detach (`setsid`, a double fork, `nohup`): a process carrying the
release's directory there was started for that release. They are found through /proc,
so elsewhere nothing is tracked and checks simply retry as written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


def release_processes(release_dir: Path) -> frozenset[int]:
    """Pids of the live processes whose environment names `release_dir` (empty without /proc)."""
    marker = f"RECONCILER_RELEASE_DIR={release_dir}".encode()
    found: set[int] = set()
    try:
        entries = list(os.scandir(PROC))
    except OSError:
        return frozenset()
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:  # a zombie's environment reads empty; another user's is unreadable
            variables = Path(entry.path, "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in variables:
            found.add(int(entry.name))
    return frozenset(found - {os.getpid()})


@dataclass(frozen=True)
class Services:
    """What the activate hooks left running for one release, seen right after they ended."""

    release_dir: Path
    pids: frozenset[int]

    @classmethod
    def of(cls, release_dir: Path) -> Services:
        """The processes running for `release_dir` now."""
        return cls(release_dir, release_processes(release_dir))

    def exited(self) -> str | None:
        """Why waiting longer is pointless (no process runs for the release any more), or None
        while one does or when nothing was left running to watch. Any process of the release
        counts, not only those first seen: a daemon may fork anew after activate returned."""
        if not self.pids or release_processes(self.release_dir):
            return None
        listed = ", ".join(str(pid) for pid in sorted(self.pids))
        return f"the processes activate left running (pid {listed}) have exited"
