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

Key = tuple[str, int, int, str]  # display name, size, mtime_ns, sha256 of the bytes


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
        self._entries: dict[Path, tuple[Key, Loaded]] = {}
        self._setting: object = None  # what else the results depend on (environ, kinds)
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Forget everything (the next load parses every file)."""
        self._entries.clear()

    def begin(
        self, paths: Iterable[Path], environ: Mapping[str, str], kinds: Iterable[str]
    ) -> None:
        """A load of `paths` starts: drop files no longer there, and everything when the
        environment (`${VAR}` values) or the kinds known changed."""
        if not self.enabled:
            return
        setting = (frozenset(environ.items()), frozenset(kinds))
        if setting != self._setting:
            self._entries.clear()
            self._setting = setting
        kept = set(paths)
        for path in [p for p in self._entries if p not in kept]:
            del self._entries[path]

    def key(self, path: Path, display: str) -> Key | None:
        """The file's key now; None when disabled or unreadable (the loader says why)."""
        if not self.enabled:
            return None
        try:
            with path.open("rb") as handle:
                stat = os.fstat(handle.fileno())
                data = handle.read()
        except OSError:
            return None
        return (display, stat.st_size, stat.st_mtime_ns, hashlib.sha256(data).hexdigest())

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
        if key is None or self.key(path, key[0]) != key:
            self._entries.pop(path, None)
            return
        self._entries[path] = (key, Loaded(tuple(resources), tuple(problems)))
