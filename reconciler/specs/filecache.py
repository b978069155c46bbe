"""What each spec file loaded to, kept between loads of one process (a watcher), so that a
file that did not change is not parsed and validated again.

An entry is used only when the file's path, size, mtime_ns and the sha256 of its bytes are
all as they were: the digest is what makes it safe (an edit that keeps size and mtime, a
`touch -d` back, is still seen); the stat fields only make a miss cheap to tell. Every
lookup reads the file, which is far cheaper than parsing it (YAML with line marks).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import SpecProblem
from reconciler.specs.envelope import Resource

Key = tuple[int, int, str]  # size, mtime_ns, sha256 of the bytes


@dataclass(frozen=True)
class Loaded:
    """What one file gave: its resources and its problems."""

    resources: tuple[Resource, ...]
    problems: tuple[SpecProblem, ...]


class FileCache:
    """Per-file results of a specs directory's load. Not thread-safe: one loader uses it.
    A disabled cache (a command that loads once) reads nothing and keeps nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._entries: dict[Path, tuple[Key | None, Loaded]] = {}  # None: unreadable
        self._setting: object = None  # what else the results depend on (environ, kinds)
        self._fresh: list[Resource] = []  # parsed, not given from here, since last taken
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget everything (the next load parses every file)."""
        self._entries.clear()

    def begin(
        self,
        paths: Iterable[Path],
        environ: Mapping[str, str],
        kinds: Iterable[str],
        where: tuple[str, str | None],
    ) -> None:
        """A load of `paths` starts: drop files no longer there, and everything when the
        environment (`${VAR}` values), the kinds known or `where` (the working directory and
        display root that messages name files from) changed."""
        if not self.enabled:
            return
        setting = (frozenset(environ.items()), frozenset(kinds), where)
        if setting != self._setting:
            self._entries.clear()
            self._setting = setting
        kept = set(paths)
        for path in [p for p in self._entries if p not in kept]:
            del self._entries[path]

    def key(self, path: Path) -> Key | None:
        """The file's key now; None when disabled or unreadable (the loader says why)."""
        if not self.enabled:
            return None
        try:
            with open(path, "rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except OSError:
            return None
        return (stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest())

    def same(self, paths: Iterable[Path]) -> bool:
        """Whether `paths` are the files of the last load, each with the size and mtime_ns
        it had when read: no write since (a watcher's settling check; a write after it
        is another trigger, and its load compares digests)."""
        paths = list(paths)
        if len(paths) != len(self._entries):
            return False
        for path in paths:
            entry = self._entries.get(path)
            if entry is None:
                return False
            try:
                stat = os.stat(path)
            except OSError:
                now = None
            else:
                now = (stat.st_size, stat.st_mtime_ns)
            if now != (entry[0][:2] if entry[0] else None):
                return False
        return True

    def get(self, path: Path, key: Key | None) -> Loaded | None:
        """The file's earlier result, if its key is the same."""
        entry = self._entries.get(path)
        if key is None or entry is None or entry[0] != key:
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(
        self,
        path: Path,
        key: Key | None,
        resources: Iterable[Resource],
        problems: Iterable[SpecProblem],
    ) -> None:
        """Keep what the file loaded to, unless it changed while it was read (its key now
        differs from the one taken before reading: the next load reads it again)."""
        resources = tuple(resources)
        self._fresh += resources
        if key is not None and self.key(path) != key:
            self._entries.pop(path, None)
            return
        self._entries[path] = (key, Loaded(resources, tuple(problems)))

    def take_fresh(self) -> list[Resource]:
        """The resources parsed (not given from the cache) since this was last called: the
        ones whose secrets the redactor does not know yet, even after a load that failed."""
        fresh, self._fresh = self._fresh, []
        return fresh
