"""The processes a release's activate hooks left running (its services), so that verify
stops waiting for a service that has already exited.

Every hook runs with RECONCILER_RELEASE_DIR in its environment and its children inherit
it, even when they detach (`setsid`, a double fork, `nohup`); most also work in the
release directory. Those two only find them: a daemon may overwrite its environment (a
process title written over it, `env -i`) or change directory, so a process once found is
followed by its identity (pid and start time, which survive a new title and rule out a
reused pid), and so are its children and the members of its session. Only when none of
them is left, twice in a row, is the wait over. Found through /proc: elsewhere nothing is
followed and checks simply retry as written.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CONFIRM_SECONDS = 0.2  # a daemon between its fork and its parent's exit is not "gone"


@dataclass(frozen=True)
class _Process:
    pid: int
    start: str  # clock ticks since boot: with the pid, names one process for good
    parent: int
    session: int
    zombie: bool


def _processes() -> dict[int, _Process]:
    """Every process of the machine by pid (empty without /proc)."""
    found: dict[int, _Process] = {}
    try:
        entries = [e.name for e in os.scandir(PROC) if e.name.isdigit()]
    except OSError:
        return found
    for name in entries:
        try:  # `pid (comm) state ppid pgrp session ... starttime(22) ...`; comm may hold ')'
            fields = (PROC / name / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        pid = int(name)
        found[pid] = _Process(pid, fields[19], int(fields[1]), int(fields[3]), fields[0] == "Z")
    return found


def _belongs(pid: int, marker: bytes, release_dir: Path) -> bool:
    """True for a process with the release's marker in its environment or working in it."""
    try:  # a zombie's environment reads empty; another user's is unreadable
        if marker in (PROC / str(pid) / "environ").read_bytes().split(b"\0"):
            return True
        return Path(os.readlink(PROC / str(pid) / "cwd")).is_relative_to(release_dir)
    except OSError:
        return False


@dataclass
class Services:
    """What runs for one release: found by its marker, followed by identity."""

    release_dir: Path
    origin: str = "activate left running"
    followed: set[tuple[int, str]] = field(default_factory=set)
    first: list[int] = field(default_factory=list)  # the pids first found, for the message

    @classmethod
    def of(
        cls,
        release_dir: Path,
        origin: str = "activate left running",
        before: Services | None = None,
    ) -> Services:
        """The processes running for `release_dir` now, less those already in `before`
        (left by build or preview: not the service)."""
        services = cls(release_dir, origin)
        services._follow()
        if before is not None:
            services.followed -= before.followed
        services.first = sorted(pid for pid, _ in services.followed)
        return services

    def _follow(self) -> bool:
        """Add what belongs to the release now; True when one of it still runs."""
        table = _processes()
        own_session, me = os.getsid(0), os.getpid()
        marker = f"RECONCILER_RELEASE_DIR={self.release_dir}".encode()
        live = {(p.pid, p.start) for p in table.values() if not p.zombie}
        self.followed &= live  # the exited ones are over; a reused pid has another start
        pids = {pid for pid, _ in self.followed}
        sessions = {table[pid].session for pid in pids} - {0, own_session}
        for process in table.values():
            if process.zombie or process.pid == me:
                continue
            if (
                process.parent in pids
                or process.session in sessions
                or _belongs(process.pid, marker, self.release_dir)
            ):
                self.followed.add((process.pid, process.start))
        return bool(self.followed)

    def exited(self) -> str | None:
        """Why waiting longer is pointless (nothing runs for the release any more), or None
        while something does, or when nothing was running to follow in the first place."""
        if not self.first or self._follow():
            return None
        time.sleep(CONFIRM_SECONDS)
        if self._follow():
            return None
        listed = ", ".join(str(pid) for pid in self.first)
        return f"the processes {self.origin} (pid {listed}) have exited"
