"""The single-writer apply lock: one row naming its holder; only a provably dead holder's
lock is reclaimed.

A pid alone names no process: containers sharing a state volume have the same host name
and their own pid numbers, and pids are reused. The holder is identified by host name,
boot id (shared by every container on one kernel), PID namespace and the process's start
time; its lock is reclaimed only when it ran under this boot in this PID namespace and its
pid is gone or now belongs to a process started at another time, or when it ran on this
installation (same machine id) and took the lock before the running kernel booted (a
restart ended it). Anything else (another host, another machine of the same name, another
PID namespace) cannot be checked from here and is refused.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import LockHeld, StoreError
from reconciler.store.clock import now, parse_stamp
from reconciler.store.database import StoreDatabase


@dataclass(frozen=True)
class Identity:
    """What tells one process apart from every other one sharing the store."""

    pid: int
    host: str
    boot_id: str | None  # None where the system does not say (not Linux)
    pid_namespace: str | None
    start_time: int | None  # clock ticks after boot: /proc/PID/stat field 22
    machine_id: str | None = None  # /etc/machine-id: this installation, across its boots


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def start_time(pid: int) -> int | None:
    """When process `pid` started, in clock ticks after boot (None: unknown or gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])  # field 22 of the whole line
    except (IndexError, ValueError):
        return None


def this_process() -> Identity:
    """The identity of the running process."""
    try:
        namespace: str | None = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    return Identity(
        os.getpid(),
        socket.gethostname(),
        _read("/proc/sys/kernel/random/boot_id"),
        namespace,
        start_time(os.getpid()),
        _read("/etc/machine-id"),
    )


def booted_at() -> datetime | None:
    """When this kernel booted (`btime` of /proc/stat), or None where it does not say."""
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("btime "):
            return datetime.fromtimestamp(int(line.split()[1]), UTC)
    return None


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, for messages and for judging whether it is still alive."""

    pid: int
    host: str
    command: str
    acquired_at: str
    boot_id: str | None = None
    pid_namespace: str | None = None
    start_time: int | None = None
    machine_id: str | None = None

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}) since {self.acquired_at}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LockHolder:
        """Build from a `lock` table row."""
        return cls(
            row["pid"],
            row["host"],
            row["command"],
            row["acquired_at"],
            row.get("boot_id"),
            row.get("pid_namespace"),
            row.get("start_time"),
            row.get("machine_id"),
        )


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists in this PID namespace."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _restarted_since(holder: LockHolder, me: Identity) -> bool:
    """True when the holder ran on this very installation (same machine id) and took the
    lock before the running kernel booted: every process of that earlier boot is gone."""
    if holder.machine_id is None or holder.machine_id != me.machine_id:
        return False  # another machine of the same host name, or one that does not say
    booted = booted_at()
    try:
        acquired = parse_stamp(holder.acquired_at)
    except ValueError:
        return False
    return booted is not None and acquired < booted


def judge(holder: LockHolder, me: Identity) -> tuple[bool, str]:
    """(provably dead, why) for a lock holder, as seen from process `me`."""
    if holder.host != me.host:
        return False, "runs on another host"
    if None in (holder.boot_id, holder.pid_namespace, me.boot_id, me.pid_namespace):
        # A row from an older reconciler, or no /proc here: the pid is all there is.
        if pid_alive(holder.pid):
            return False, "is still running"
        return True, "that process is gone"
    if holder.boot_id != me.boot_id:
        if _restarted_since(holder, me):
            return True, f"its machine has restarted since (boot {holder.boot_id})"
        # Containers share their kernel's boot id: this is a reboot, or another machine
        # with the same host name; nothing here can tell which.
        return False, (
            f"ran under another boot ({holder.boot_id}) of host {holder.host}: the machine "
            "restarted since, or another machine has the same host name"
        )
    if holder.pid_namespace != me.pid_namespace:
        return False, (
            f"runs in another PID namespace ({holder.pid_namespace}, a container sharing "
            "this state), where its pid cannot be checked from here"
        )
    if not pid_alive(holder.pid):
        return True, "that process is gone"
    started = start_time(holder.pid)
    if holder.start_time is not None and started is not None and started != holder.start_time:
        return True, f"pid {holder.pid} now belongs to another process"
    return False, "is still running"


class ApplyLock:
    """Acquire, release and inspect the lock row of a store.

    Taking the lock writes a fresh token; the holder checks it (`lost`) before each action,
    so a holder whose lock was removed by `state unlock --force` stops instead of carrying on.
    """

    def __init__(self, database: StoreDatabase) -> None:
        self.database = database
        self.token: str | None = None

    def holder(self) -> LockHolder | None:
        """The current holder, or None."""
        rows = self.database.query("SELECT * FROM lock WHERE id = 1")
        return LockHolder.from_row(rows[0]) if rows else None

    def acquire(self, command: str, timeout: float = 0.0) -> str | None:
        """Take the lock, waiting up to `timeout` s; returns a note if a dead holder was freed."""
        deadline = time.monotonic() + timeout
        me = this_process()
        while True:
            with self.database.transaction():
                holder = self.holder()
                note = None
                why = ""
                if holder is not None:
                    dead, why = judge(holder, me)
                    if dead:
                        note = f"reclaimed the lock of {holder}: {why}"
                        holder = None
                if holder is None:
                    self._write(command, me)
                    return note
            if time.monotonic() >= deadline:
                waited = f" after waiting {timeout:g}s" if timeout else ""
                raise LockHeld(
                    f"state is locked by {holder}{waited}; it {why}. Wait for it, or run "
                    "`reconciler state unlock --force` if you know it is no longer running"
                )
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _write(self, command: str, me: Identity) -> None:
        self.token = secrets.token_hex(16)
        self.database.execute(
            "INSERT OR REPLACE INTO lock(id, holder, pid, host, command, acquired_at, "
            "boot_id, pid_namespace, start_time, machine_id, token) "
            "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                f"{me.pid}@{me.host}",
                me.pid,
                me.host,
                command,
                now(),
                me.boot_id,
                me.pid_namespace,
                me.start_time,
                me.machine_id,
                self.token,
            ),
        )

    def lost(self) -> bool:
        """True when this process took the lock and it is no longer its own (forced away)."""
        if self.token is None:
            return False
        rows = self.database.query("SELECT token FROM lock WHERE id = 1")
        return not rows or rows[0]["token"] != self.token

    def release(self) -> None:
        """Release the lock if this process still holds it."""
        if self.token is None:
            return
        with self.database.transaction():
            self.database.execute("DELETE FROM lock WHERE id = 1 AND token = ?", (self.token,))
        self.token = None

    def unlock(self, force: bool) -> str:
        """Remove a stale lock; one whose holder is not provably dead only with `force`."""
        with self.database.transaction():
            holder = self.holder()
            if holder is None:
                return "the state is not locked"
            dead, why = judge(holder, this_process())
            if not dead and not force:
                raise StoreError(
                    f"the lock holder ({holder}) {why}; "
                    "use `state unlock --force` to remove it anyway"
                )
            self.database.execute("DELETE FROM lock WHERE id = 1")
            if dead:
                return f"released the lock held by {holder}"
            return (
                f"released the lock held by {holder}; if it is still running, it stops "
                "before its next action"
            )
