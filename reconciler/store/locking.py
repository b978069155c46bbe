"""The single-writer apply lock: one row naming its holder; a dead holder here is reclaimed."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from reconciler.errors import LockHeld, StoreError
from reconciler.store.database import StoreDatabase, now


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, for messages."""

    pid: int
    host: str
    command: str
    acquired_at: str

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host} ({self.command}) since {self.acquired_at}"

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LockHolder:
        """Build from a `lock` table row."""
        return cls(row["pid"], row["host"], row["command"], row["acquired_at"])


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ApplyLock:
    """Acquire, release and inspect the lock row of a store."""

    def __init__(self, database: StoreDatabase) -> None:
        self.database = database

    def holder(self) -> LockHolder | None:
        """The current holder, or None."""
        rows = self.database.query("SELECT * FROM lock WHERE id = 1")
        return LockHolder.from_row(rows[0]) if rows else None

    def acquire(self, command: str, timeout: float = 0.0) -> str | None:
        """Take the lock, waiting up to `timeout` s; returns a note if a dead holder was freed."""
        deadline = time.monotonic() + timeout
        while True:
            with self.database.transaction():
                holder = self.holder()
                note = None
                local = holder is not None and holder.host == socket.gethostname()
                if holder is not None and local and not pid_alive(holder.pid):
                    note = f"reclaimed the lock of {holder}: that process is gone"
                    holder = None
                if holder is None:
                    self._write(command)
                    return note
            if time.monotonic() >= deadline:
                waited = f" after waiting {timeout:g}s" if timeout else ""
                raise LockHeld(
                    f"state is locked by {holder}{waited}; "
                    "wait for it, or run `reconciler state unlock` if it is stale"
                )
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _write(self, command: str) -> None:
        self.database.execute(
            "INSERT OR REPLACE INTO lock(id, holder, pid, host, command, acquired_at) "
            "VALUES (1, ?, ?, ?, ?, ?)",
            (
                f"{os.getpid()}@{socket.gethostname()}",
                os.getpid(),
                socket.gethostname(),
                command,
                now(),
            ),
        )

    def release(self) -> None:
        """Release the lock if this process holds it."""
        with self.database.transaction():
            self.database.execute(
                "DELETE FROM lock WHERE id = 1 AND pid = ? AND host = ?",
                (os.getpid(), socket.gethostname()),
            )

    def unlock(self, force: bool) -> str:
        """Remove a stale lock; a live holder on this host is removed only with `force`."""
        with self.database.transaction():
            holder = self.holder()
            if holder is None:
                return "the state is not locked"
            alive = holder.host == socket.gethostname() and pid_alive(holder.pid)
            remote = holder.host != socket.gethostname()
            if (alive or remote) and not force:
                why = "is still running" if alive else "runs on another host"
                raise StoreError(
                    f"the lock holder ({holder}) {why}; "
                    "use `state unlock --force` to remove it anyway"
                )
            self.database.execute("DELETE FROM lock WHERE id = 1")
            return f"released the lock held by {holder}"
