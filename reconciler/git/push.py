"""Pushing chosen refs from a cache to a destination, compare-and-swap, with per-ref outcomes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import TemporaryError
from reconciler.git.process import GitRunner
from reconciler.git.remotes import Remote

STALE_LOCK_SECONDS = 5.0

# `git push --porcelain` flags: what happened to each ref.
_FLAGS = {
    " ": "fast-forwarded",
    "+": "forced",
    "-": "deleted",
    "*": "created",
    "=": "up to date",
    "!": "rejected",
}


@dataclass(frozen=True)
class RefUpdate:
    """Set `ref` to `new` (None deletes) only if it is at `expected` now (None: absent)."""

    ref: str
    new: str | None
    expected: str | None

    def refspec(self) -> str:
        """The refspec handed to git push."""
        if self.new is None:
            return f":{self.ref}"
        # Never `+`: it would override the lease. The lease alone allows a non-fast-forward.
        return f"{self.new}:{self.ref}"

    def lease(self) -> str:
        """`--force-with-lease` so git updates the ref only if it is where we saw it."""
        return f"--force-with-lease={self.ref}:{self.expected or ''}"


@dataclass(frozen=True)
class RefOutcome:
    """What the destination did with one ref."""

    ref: str
    ok: bool
    summary: str


def push(
    runner: GitRunner, cache: Path, remote: Remote, updates: list[RefUpdate]
) -> list[RefOutcome]:
    """Push `updates` from the repository at `cache` to `remote`; one outcome per ref.

    Refs are not pushed atomically on purpose: one rejected ref must not hold back the others.
    """
    if not updates:
        return []
    cleared = clear_stale_locks(remote, [u.ref for u in updates])
    args = ["push", "--porcelain", "--no-verify"]
    args += [u.lease() for u in updates]
    args += [remote.git_url(), *(u.refspec() for u in updates)]
    result = runner.run(args, cwd=cache, remote=remote, check=False)
    outcomes = _parse(result.stdout)
    if not outcomes:
        raise runner.error("push", result.stderr)
    seen = {o.ref for o in outcomes}
    reason = runner.redact(result.stderr.strip().splitlines()[-1]) if result.stderr.strip() else ""
    outcomes += [
        RefOutcome(u.ref, False, reason or "not reported") for u in updates if u.ref not in seen
    ]
    if result.returncode != 0 and all(o.ok for o in outcomes):
        raise TemporaryError(runner.redact(f"git push: {result.stderr.strip()}"))
    if cleared:
        note = "; removed " + ", ".join(cleared)
        outcomes = [RefOutcome(o.ref, o.ok, o.summary + note) for o in outcomes]
    return outcomes


def clear_stale_locks(remote: Remote, refs: list[str]) -> list[str]:
    """Remove lock files a killed git left in a local repository on the way of `refs`.

    git never removes a `.lock` its dead process left, and every later update of that ref
    is refused ("failed to update ref") until a person deletes it. A live git holds a ref
    lock for milliseconds (and waits at most 1 s for one), so a lock older than
    STALE_LOCK_SECONDS belongs to nobody. Network remotes are the server's business.
    """
    if not remote.is_local:
        return []
    root = remote.local_path
    if (root / ".git").is_dir():
        root = root / ".git"
    names = [*refs, "HEAD", "packed-refs"]
    cleared = []
    for name in names:
        lock = root / f"{name}.lock"
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            continue  # no lock: the usual case
        if age >= STALE_LOCK_SECONDS:
            lock.unlink(missing_ok=True)
            cleared.append(f"a stale {name}.lock ({age:.0f}s old, left by a killed git)")
    return cleared


def _parse(stdout: str) -> list[RefOutcome]:
    outcomes = []
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0] not in _FLAGS:
            continue
        ref = parts[1].rsplit(":", 1)[-1]
        flag, summary = parts[0], parts[2].strip()
        ok = flag != "!"
        outcomes.append(RefOutcome(ref, ok, summary if not ok else _FLAGS[flag]))
    return outcomes
