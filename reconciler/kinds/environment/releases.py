"""An environment directory on disk: `releases/<n>-<shortsha>/`, the `current` link, the
blue/green slot links, and the `.reconciler/` directory of per-release manifests
(manifests.py).

Nothing reconciler writes, reads for a manifest or deletes here may lead outside the
target directory: `Layout.refusals()` names every link that would (`releases`,
`.reconciler`, a release directory, `current`, a slot), and the controller refuses to
touch the environment while there is one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from reconciler.git.refs import is_sha

SLOTS = ("blue", "green")
_RELEASE = re.compile(r"^(?P<number>\d+)-(?P<short>[0-9a-f]{7,40})\Z")
FAILED = "failed.json"  # in .reconciler/: the commit that failed, and where


def release_name(number: int, sha: str) -> str:
    """`<n>-<shortsha>`."""
    return f"{number}-{sha[:7]}"


def release_number(name: str) -> int | None:
    """The number of a release directory name, or None for anything else."""
    match = _RELEASE.match(name)
    return int(match["number"]) if match else None


def check_release_name(name: str, sha: str) -> str:
    """`name` if it is `<n>-<shortsha>` of `sha`; raises ValueError otherwise (a tampered
    plan or store must never name a path like `../x`)."""
    match = _RELEASE.match(name)
    if match is None or not sha.startswith(match["short"]):
        raise ValueError(f"release name {name!r} is not <number>-<short sha of {sha[:7]}>")
    return name


def inside(root: Path, path: Path) -> bool:
    """True when `path`, every link on the way followed, stays under `root` (resolved)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


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

    def partials(self) -> list[str]:
        """Directories of unfinished exports (`.<release>.partial`) in `releases/`."""
        if not self.releases.is_dir() or not inside(self.root, self.releases):
            return []
        return sorted(
            p.name
            for p in self.releases.iterdir()
            if p.name.startswith(".") and p.name.endswith(".partial")
        )

    def next_number(self, known: list[str]) -> int:
        """One more than any release number on disk or in `known`."""
        numbers = [release_number(n) or 0 for n in [*self.names(), *known]]
        return max(numbers, default=0) + 1

    def refusals(self) -> list[str]:
        """Every link here that leads outside the directory (`releases`, `.reconciler`,
        `current`, a slot, a release), and a `current` that is not a link: reasons to touch
        nothing in this environment (empty when it is safe)."""
        if not self.root.is_dir():
            return []
        links = [self.releases, self.manifests, self.current, *(self.slot(s) for s in SLOTS)]
        if self.releases.is_dir() and inside(self.root, self.releases):
            links += sorted(self.releases.iterdir())
        problems = [
            f"{path.relative_to(self.root)} is a link to {_readlink(path)}, outside {self.root}"
            for path in links
            if path.is_symlink() and not inside(self.root, path)
        ]
        if self.current.exists() and not self.current.is_symlink():
            problems.append(f"{self.current} is not a link; reconciler will not replace it")
        return problems

    def active_slot(self) -> str | None:
        """The slot `current` points to (blue-green), or None."""
        target = _readlink(self.current)
        return target if target in SLOTS else None

    def current_release(self) -> str | None:
        """The release `current` resolves to (through a slot, for blue-green)."""
        target = _readlink(self.current)
        if target in SLOTS:
            target = _readlink(self.slot(target))
        if target is None or not inside(self.root, self.current):
            return None
        name = Path(target).name
        return name if release_number(name) is not None else None

    def slot_release(self, slot: str) -> str | None:
        """The release a slot link points to (None when it leads outside the directory)."""
        target = _readlink(self.slot(slot))
        return Path(target).name if target and inside(self.root, self.slot(slot)) else None


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


def remove_release(layout: Layout, name: str) -> None:
    """Delete a release directory and its manifest; a link is removed, never followed, and
    nothing outside the environment's directory is ever deleted."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a release directory name: {name!r}")
    path = layout.release(name)
    if not inside(layout.root, layout.releases):
        raise ValueError(f"{layout.releases} leads outside {layout.root}")
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)  # rmtree itself never follows links inside
    manifest = layout.manifests / f"{name}.json"
    if inside(layout.root, layout.manifests):
        manifest.unlink(missing_ok=True)


def write_failure(layout: Layout, failure: dict[str, str] | None) -> None:
    """Record beside the manifests which commit failed in which release and stage (None:
    clear it), so that the block outlives the store's record of the resource (forgotten
    with its spec, then re-created)."""
    if not inside(layout.root, layout.manifests):
        return
    path = layout.manifests / FAILED
    if failure is None:
        path.unlink(missing_ok=True)
        return
    layout.manifests.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(failure, sort_keys=True))
    os.replace(temporary, path)


def read_failure(layout: Layout) -> dict[str, str] | None:
    """What `write_failure` recorded, or None (also for anything malformed: it is data)."""
    try:
        data = json.loads((layout.manifests / FAILED).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    failure = {key: data.get(key) for key in ("sha", "spec", "release", "stage")}
    if not all(isinstance(value, str) for value in failure.values()):
        return None
    sha, release = str(failure["sha"]), str(failure["release"])
    try:
        check_release_name(release, sha)
    except ValueError:
        return None
    if not is_sha(sha):
        return None
    return {key: str(value) for key, value in failure.items()}
