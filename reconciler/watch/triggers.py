"""What wakes watch mode: spec file changes, new commits of the specs' git source, webhooks.

Every source adds a reason to one `Triggers` set; the loop takes the whole set at once, so
triggers that arrive while a reconcile runs merge into one follow-up reconcile.
"""

from __future__ import annotations

import threading
from pathlib import Path

import watchfiles

from reconciler.engine.sources import GitSpecSource
from reconciler.errors import ReconcilerError
from reconciler.git import GitRunner

SPEC_SUFFIXES = (".yaml", ".yml")


class Triggers:
    """Pending reasons to reconcile, merged; wakes the loop when one arrives or on stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reasons: set[str] = set()
        self._wake = threading.Event()
        self.stopping = threading.Event()

    def add(self, reason: str) -> None:
        """Ask for a reconcile (merged with any already pending)."""
        with self._lock:
            self._reasons.add(reason)
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler)."""
        self.stopping.set()
        self._wake.set()

    def wait(self, timeout: float) -> set[str]:
        """Block until a trigger, a stop, or `timeout` seconds; return and clear the reasons."""
        self._wake.wait(max(0.0, timeout))
        with self._lock:
            self._wake.clear()
            reasons, self._reasons = self._reasons, set()
        return reasons


def watch_directory(directory: Path, triggers: Triggers, debounce_ms: int = 50) -> threading.Thread:
    """A thread that adds `file` for every burst of changes to spec files under `directory`."""

    def only_specs(change: watchfiles.Change, path: str) -> bool:
        name = Path(path).name
        return not name.startswith(".") and (
            name.endswith(SPEC_SUFFIXES) or change == watchfiles.Change.deleted
        )

    def run() -> None:
        for _changes in watchfiles.watch(
            directory,
            watch_filter=only_specs,
            debounce=debounce_ms,
            step=10,
            stop_event=triggers.stopping,
            rust_timeout=1000,
            yield_on_timeout=False,
            raise_interrupt=False,
        ):
            triggers.add("file")

    thread = threading.Thread(target=run, name="watch-specs", daemon=True)
    thread.start()
    return thread


class CommitPoller:
    """Asks the specs' git source for the sha of its ref (`git ls-remote`, no fetch)."""

    def __init__(self, source: GitSpecSource, git: GitRunner) -> None:
        self.source = source
        self.git = git
        self.last: str | None = None

    def changed(self) -> bool:
        """True when the ref moved since the last look (or since `seen()`)."""
        try:
            sha = self.head()
        except ReconcilerError:
            return False  # unreachable for now: the next poll tries again
        if sha is None or sha == self.last:
            return False
        moved = self.last is not None
        self.last = sha
        return moved

    def seen(self, commit: str | None) -> None:
        """The commit a reconcile just loaded."""
        if commit:
            self.last = commit

    def head(self) -> str | None:
        """The sha the ref names at the source now (None: not an advertised ref)."""
        remote = self.source.remote()
        args = ["ls-remote", "--", remote.git_url(), self.source.ref]
        result = self.git.run(args, timeout=60, remote=remote)
        lines = [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]
        exact = [
            sha for sha, ref in lines if ref in (self.source.ref, f"refs/heads/{self.source.ref}")
        ]
        found = exact or [sha for sha, _ref in lines]
        return found[0] if found else None
