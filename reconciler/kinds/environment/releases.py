"""An environment directory on disk: `releases/<n>-<shortsha>/`, the `current` link, the
blue/green slot links, and per-release manifests used to see hand-made changes (drift)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SLOTS = ("blue", "green")
_RELEASE = re.compile(r"^(?P<number>\d+)-(?P<short>[0-9a-f]{7,40})$")


def release_name(number: int, sha: str) -> str:
    """`<n>-<shortsha>`."""
    return f"{number}-{sha[:7]}"


def release_number(name: str) -> int | None:
    """The number of a release directory name, or None for anything else."""
    match = _RELEASE.match(name)
    return int(match["number"]) if match else None


@dataclass(frozen=True)
class Layout:
    """Paths of one environment's directory."""

    root: Path

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def current(self) -> Path:
        return self.root / "current"

    @property
    def manifests(self) -> Path:
        return self.root / ".reconciler"

    def release(self, name: str) -> Path:
        """The directory of a release."""
        return self.releases / name

    def slot(self, slot: str) -> Path:
        """The link of a blue-green slot."""
        return self.root / slot

    def names(self) -> list[str]:
        """Release directories on disk, oldest first."""
        if not self.releases.is_dir():
            return []
        found = [p.name for p in self.releases.iterdir() if release_number(p.name) is not None]
        return sorted(found, key=lambda n: release_number(n) or 0)

    def next_number(self, known: list[str]) -> int:
        """One more than any release number on disk or in `known`."""
        numbers = [release_number(n) or 0 for n in [*self.names(), *known]]
        return max(numbers, default=0) + 1

    def active_slot(self) -> str | None:
        """The slot `current` points to (blue-green), or None."""
        target = _readlink(self.current)
        return target if target in SLOTS else None

    def current_release(self) -> str | None:
        """The release `current` resolves to (through a slot, for blue-green)."""
        target = _readlink(self.current)
        if target in SLOTS:
            target = _readlink(self.slot(target))
        if target is None:
            return None
        name = Path(target).name
        return name if release_number(name) is not None else None

    def slot_release(self, slot: str) -> str | None:
        """The release a slot link points to."""
        target = _readlink(self.slot(slot))
        return Path(target).name if target else None


def _readlink(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


def switch_link(link: Path, target: str) -> None:
    """Point `link` at `target` atomically: a new link renamed over the old one."""
    temporary = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    os.symlink(target, temporary)
    os.replace(temporary, link)


def blob_sha(path: Path) -> str:
    """git's blob id of a file's content."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def write_manifest(layout: Layout, name: str, meta: dict[str, Any], files: list[str]) -> None:
    """Record a release's commit and the blob id of each of its files as they are now."""
    directory = layout.release(name)
    blobs = {f: blob_sha(directory / f) for f in files if (directory / f).is_file()}
    layout.manifests.mkdir(parents=True, exist_ok=True)
    target = layout.manifests / f"{name}.json"
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps({**meta, "files": blobs}, sort_keys=True))
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
    changed = []
    for path, expected in sorted(manifest.get("files", {}).items()):
        file = directory / path
        if not file.is_file():
            changed.append(f"{path} removed")
        elif blob_sha(file) != expected:
            changed.append(f"{path} changed")
        if len(changed) > limit:
            return [*changed[:limit], "..."]
    return changed


def remove_release(layout: Layout, name: str) -> None:
    """Delete a release directory and its manifest."""
    shutil.rmtree(layout.release(name), ignore_errors=True)
    (layout.manifests / f"{name}.json").unlink(missing_ok=True)
