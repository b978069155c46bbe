"""Release manifests: the git blob id of every file of a release as deployed (after
`build`), and what `lstat` said of each file then, so that drift hashes only the files
that look changed, and a deploy hashes only the files git did not write.

A deploy takes the blob ids `git ls-tree` lists instead of hashing the export: a file is
as git wrote it when its inode last changed before a stamp taken right after the export
(the ctime of a new file on the same file system), its size is the blob's, and no
gitattributes apply (they may make `git archive` write other bytes). Any other file (one
`build` wrote, say) is hashed, once.

Drift trusts a file unchanged when size, mtime, ctime and inode are those recorded and
the recorded ctime is earlier than a stamp taken before they were read (git's "racy
clean" rule: a change in the same clock tick could leave them all equal). No user can set
a ctime back (`touch -d` and `utime` set it to now), so an edit, a truncation, a chmod, a
file renamed or linked over it changes it; such a file is hashed and compared. Directories
on the way are checked for links as before. Manifests written before `seen` existed are
checked by hashing every file, as they always were.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from reconciler.git import TreeEntry
from reconciler.kinds.environment.releases import Layout


def _blob(data: bytes) -> str:
    """git's blob id of `data`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def entry_id(directory: Path, relative: str) -> str | None:
    """What is at `relative` under `directory`, never following a link: the blob id of a
    regular file, `link:<blob id of its target>` for a link, `link-on-path:<dir>` when a
    directory on the way is a link, None when there is nothing (or a directory, a fifo...)."""
    path = directory
    parts = relative.split("/")
    for part in parts[:-1]:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            return f"link-on-path:{path.relative_to(directory).as_posix()}"
        if not stat.S_ISDIR(mode):
            return None
    path = path / parts[-1]
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            return "link:" + _blob(os.fsencode(os.readlink(path)))
        if not stat.S_ISREG(mode):
            return None
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as file:
        return _blob(file.read())


def fs_stamp(directory: Path) -> int:
    """The file system's clock now, in ns: the ctime of a new file in `directory` (a file
    whose ctime is below it last changed before this call; timestamps are coarser than the
    system clock, and only the file system's own compare safely)."""
    descriptor, name = tempfile.mkstemp(prefix=".stamp-", dir=directory)
    try:
        return os.fstat(descriptor).st_ctime_ns
    finally:
        os.close(descriptor)
        os.unlink(name)


class _Stats:
    """`lstat` of files under one directory, each directory on the way checked once."""

    def __init__(self, directory: Path) -> None:
        self.root = os.fspath(directory)
        self.directories: dict[str, bool] = {"": True}  # relative dir: a real directory

    def of(self, relative: str) -> os.stat_result | None:
        """The lstat of a regular file or link, None for anything else or when a directory
        on the way is not a real directory (`entry_id` then says what is there)."""
        parent = relative.rpartition("/")[0]
        if not self._directory(parent):
            return None
        try:
            info = os.lstat(os.path.join(self.root, relative))
        except OSError:
            return None
        return info if stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode) else None

    def _directory(self, relative: str) -> bool:
        known = self.directories.get(relative)
        if known is None:
            up = relative.rpartition("/")[0]
            try:
                mode = os.lstat(os.path.join(self.root, relative)).st_mode
                known = self._directory(up) and stat.S_ISDIR(mode)
            except OSError:
                known = False
            self.directories[relative] = known
        return known


def _seen(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]


def write_manifest(
    layout: Layout,
    name: str,
    meta: dict[str, Any],
    tree: Mapping[str, TreeEntry],
    exported: int,
    attributed: Collection[str] = (),
) -> None:
    """Record a release's commit and the id of each of its files as they are now: git's
    blob id where the export wrote the file and nothing changed it since (ctime below the
    stamp `exported`, the blob's size, not in `attributed`), the file's hash otherwise."""
    directory = layout.release(name)
    stats = _Stats(directory)
    before = fs_stamp(layout.releases)  # earlier than every lstat below
    files: dict[str, str] = {}
    seen: dict[str, list[int]] = {}
    for path, entry in tree.items():
        info = stats.of(path)
        if info is None:
            found = entry_id(directory, path)  # a link on the way, or nothing
        elif info.st_ctime_ns < exported and info.st_size == entry.size and path not in attributed:
            found = ("link:" if stat.S_ISLNK(info.st_mode) else "") + entry.blob
        else:
            found = entry_id(directory, path)
        if found is None:
            continue
        files[path] = found
        if info is not None:
            seen[path] = _seen(info)
    layout.manifests.mkdir(parents=True, exist_ok=True)
    target = layout.manifests / f"{name}.json"
    temporary = target.with_suffix(".tmp")
    document = {**meta, "files": files, "seen": seen, "stamp": before}
    temporary.write_text(json.dumps(document, sort_keys=True))
    os.replace(temporary, target)


def read_manifest(layout: Layout, name: str) -> dict[str, Any] | None:
    """A release's manifest, or None if it has none (or it is unreadable)."""
    try:
        data = json.loads((layout.manifests / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def drift(layout: Layout, name: str, limit: int = 5) -> list[str]:
    """Files of a release changed or removed since it was deployed (at most `limit` named)."""
    manifest = read_manifest(layout, name)
    if manifest is None:
        return ["no manifest: release not deployed by reconciler"]
    directory = layout.release(name)
    seen = manifest.get("seen")
    stamp = manifest.get("stamp")
    if not isinstance(seen, dict) or not isinstance(stamp, int):
        seen = {}  # written before `seen` existed (or damaged): hash every file
    stats = _Stats(directory)
    changed = []
    for path, expected in sorted(manifest.get("files", {}).items()):
        recorded = seen.get(path)
        if _unchanged(recorded, stamp, stats, path):
            continue
        found = entry_id(directory, path)
        if found is None:
            changed.append(f"{path} removed")
        elif found.startswith("link") and not str(expected).startswith("link"):
            changed.append(f"{path} replaced by a link")
        elif found != expected:
            changed.append(f"{path} changed")
        if len(changed) > limit:
            return [*changed[:limit], "..."]
    return changed


def _unchanged(recorded: object, stamp: object, stats: _Stats, path: str) -> bool:
    """True when lstat shows the file as recorded, and the record is not racy."""
    if not isinstance(recorded, list) or len(recorded) != 4 or not isinstance(stamp, int):
        return False
    if not isinstance(recorded[2], int) or recorded[2] >= stamp:
        return False  # changed in the tick the manifest was written: lstat cannot tell
    info = stats.of(path)
    return info is not None and _seen(info) == recorded
