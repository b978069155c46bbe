"""A bare repository under the state directory holding a source's objects between runs.

Fetches go through the git CLI (much faster than dulwich's pack transfer); object and
ancestry questions are answered in-process by dulwich. Bitmaps stay off because dulwich
fails on a repo mixing packs with and without them.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from reconciler.git.process import GitRunner
from reconciler.git.remotes import Remote, is_repository

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()
_present: dict[Path, set[str]] = {}
# dulwich fails on a repository mixing packs with and without bitmaps (BASELINES.md).
_CACHE_CONFIG = (
    ("repack.writeBitmaps", "false"),
    ("gc.writeCommitGraph", "false"),
)  # objects seen in each cache by this process


def cache_lock(path: Path) -> threading.Lock:
    """One lock per cache path, so that threads of one process never fetch into it at once."""
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


class BareCache:
    """A bare repository under the state directory that caches one remote's objects."""

    def __init__(self, root: Path, remote: Remote, runner: GitRunner) -> None:
        key = hashlib.sha256(remote.git_url().encode()).hexdigest()[:16]
        self.path = root / f"{key}.git"
        self.remote = remote
        self.runner = runner

    def exists(self) -> bool:
        """True once the cache repository has been created (completely)."""
        return is_repository(self.path)

    def _ensure(self) -> None:
        if self.exists():
            return  # else absent, or half made by a killed run: `git init` completes it
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.runner.run(["init", "--quiet", "--bare", "--", str(self.path)])
        for key, value in _CACHE_CONFIG:
            self.runner.run(["config", key, value], cwd=self.path)


class ObjectCache(BareCache):
    """The local object cache of one source repository."""

    @property
    def source(self) -> Remote:
        """The repository this cache mirrors."""
        return self.remote

    def missing(self, shas: Iterable[str]) -> list[str]:
        """The objects among `shas` that the cache does not hold."""
        known = _present.setdefault(self.path, set())
        wanted = sorted(set(shas) - known)
        if not wanted:
            return []
        if not self.exists():
            return wanted
        from dulwich.objects import ObjectID  # dulwich only when objects are asked about
        from dulwich.repo import Repo

        repo = Repo(str(self.path))
        try:
            absent = [sha for sha in wanted if ObjectID(sha.encode()) not in repo.object_store]
            tips = {sha.decode() for sha in repo.get_refs().values()}
        finally:
            repo.close()
        # A fetch cut short (disk full, killed) leaves objects that no ref reaches, perhaps
        # without the trees and blobs below them: those count as missing, so they are
        # fetched again instead of being pushed as a broken pack.
        absent += [s for s in wanted if s not in absent and s not in tips and not self._whole(s)]
        known.update(set(wanted) - set(absent))  # objects never leave a cache in one run
        return absent

    def _whole(self, sha: str) -> bool:
        """True when every object `sha` needs is here (a walk of what no ref reaches yet)."""
        walk = [
            "rev-list",
            "--objects",
            "--quiet",
            "--not",
            "--all",
            "--not",
            "--end-of-options",
            sha,
        ]
        return self.runner.run(walk, cwd=self.path, check=False).returncode == 0

    def ensure_objects(self, shas: Iterable[str]) -> bool:
        """Fetch the source into the cache if any of `shas` is missing; True if it fetched."""
        with cache_lock(self.path):
            if not self.missing(shas):
                return False
            self._fetch()
            return True

    def refresh(self) -> None:
        """Fetch every branch and tag of the source into the cache."""
        with cache_lock(self.path):
            self._fetch()

    def _fetch(self) -> None:
        if not self.exists() and self.source.is_local and self.source.exists():
            self._clone_local()
            return
        self._ensure()
        self.runner.run(
            [
                "fetch",
                "--quiet",
                "--prune",
                "--no-write-fetch-head",
                "--",
                self.source.git_url(),
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
            cwd=self.path,
            remote=self.source,
        )

    def _clone_local(self) -> None:
        """A first fill from a local source: `clone --mirror` hardlinks its objects (no copy).

        Into a temporary name first, so that an interrupted clone never looks like a cache.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        self.runner.run(
            ["clone", "--quiet", "--mirror", "--", self.source.git_url(), str(partial)],
            remote=self.source,
        )
        for key, value in _CACHE_CONFIG:
            self.runner.run(["config", key, value], cwd=partial)
        if self.path.exists():  # half made by a killed run: nothing in it to keep
            shutil.rmtree(self.path)
        partial.rename(self.path)

    def fast_forwards(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """For each (old, new): is `old` an ancestor of `new`? Unknown objects count as no."""
        pairs = list(pairs)
        if not pairs or not self.exists():
            return dict.fromkeys(pairs, False)
        from dulwich.graph import can_fast_forward
        from dulwich.objects import ObjectID
        from dulwich.repo import Repo

        repo = Repo(str(self.path))
        try:
            store = repo.object_store
            answers = {}
            for old, new in pairs:
                a, b = ObjectID(old.encode()), ObjectID(new.encode())
                answers[(old, new)] = a in store and b in store and can_fast_forward(repo, a, b)
            return answers
        finally:
            repo.close()

    def preserve(self, remote: Remote, ref: str, sha: str, label: str) -> str:
        """Keep the objects of `remote`'s `ref` (expected at `sha`) under a cache ref; return it.

        The name ends in the old sha: two updates of one ref under one label (within one
        second) keep both old tips instead of the second overwriting the first.
        """
        keep = f"refs/reconciler/preserved/{label}/{ref.removeprefix('refs/')}@{sha}"
        with cache_lock(self.path):
            self._ensure()
            if self.missing([sha]):
                self.runner.run(
                    [
                        "fetch",
                        "--quiet",
                        "--no-tags",
                        "--no-write-fetch-head",
                        "--",
                        remote.git_url(),
                        f"+{ref}:{keep}",
                    ],
                    cwd=self.path,
                    remote=remote,
                )
            else:
                self.runner.run(["update-ref", "--", keep, sha], cwd=self.path)
        return keep
