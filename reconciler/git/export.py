"""Exporting a commit's tree to a directory (`git archive | tar -x`, the fastest measured way),
and resolving a ref to the commit it names."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import GitError
from reconciler.git.process import GitRunner


def export_tree(runner: GitRunner, repo: Path, commit: str, destination: Path) -> None:
    """Write the tree of `commit` (in the repository at `repo`) into the new `destination`."""
    destination.mkdir(parents=True)
    archive = subprocess.Popen(
        ["git", "archive", "--format=tar", "--end-of-options", commit],
        cwd=repo,
        env=runner.environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert archive.stdout is not None
    extract = subprocess.run(
        ["tar", "-x", "-m", "-f", "-", "-C", str(destination)],
        stdin=archive.stdout,
        capture_output=True,
        check=False,
    )
    archive.stdout.close()
    errors = archive.stderr.read().decode(errors="replace") if archive.stderr else ""
    if archive.wait() != 0 or extract.returncode != 0:
        detail = errors.strip() or extract.stderr.decode(errors="replace").strip()
        lines = "; ".join(line for line in detail.splitlines() if line.strip())
        raise GitError(f"cannot export {commit[:7]}: {lines}{_file_system(destination)}")


def _file_system(directory: Path) -> str:
    """Why a write may have failed, in the words tar does not use (full, read-only)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return ""
    if stats.f_flag & os.ST_RDONLY:
        return f" ({directory.parent} is on a read-only file system)"
    if stats.f_bavail * stats.f_frsize < 1 << 20:
        return f" (the file system of {directory.parent} is full)"
    return ""


@dataclass(frozen=True)
class TreeEntry:
    """A file or symbolic link of a commit: its blob id and size (a link's blob is its
    target, as git stores it)."""

    blob: str
    size: int


def tree_entries(runner: GitRunner, repo: Path, commit: str) -> dict[str, TreeEntry]:
    """{path: entry} of every file and symbolic link in `commit` (what an exported release
    must contain), from one `git ls-tree -r -l`: git already knows every blob id."""
    listing = runner.run(
        ["ls-tree", "-r", "-z", "-l", "--full-tree", "--end-of-options", commit], cwd=repo
    ).stdout
    entries = {}
    for entry in listing.split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            _mode, kind, sha, size = meta.split()
            if kind == "blob":
                entries[path] = TreeEntry(sha, int(size))
    return entries


def shadowed(entries: Iterable[str]) -> str | None:
    """A path of the tree that is also a directory of it (a link `docs` beside a tree `docs/`:
    git fsck's duplicateEntries, which `git mktree` builds), or None. tar would extract the
    link and then write into it, or not, depending on its delayed-link bookkeeping."""
    paths = set(entries)
    for path in sorted(paths):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in paths:
                return "/".join(parts[:depth])
    return None


def attributed(runner: GitRunner, repo: Path, paths: Iterable[str]) -> set[str]:
    """The paths that some gitattributes outside the tree (the repository's info/attributes,
    the user's or the system's file) give an attribute: `git archive` may write those
    otherwise than as stored (export-subst, ident, eol, filters), so their blob ids do not
    tell what is on disk. A tree's own `.gitattributes` is the caller's to look for."""
    names = b"".join(os.fsencode(path) + b"\0" for path in paths)
    result = subprocess.run(
        ["git", "check-attr", "-a", "-z", "--stdin"],
        cwd=repo,
        env=runner.environment(),
        input=names,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise runner.error("check-attr", result.stderr.decode(errors="replace"))
    fields = result.stdout.split(b"\0")  # path, attribute, value, path, ...
    return {os.fsdecode(path) for path in fields[0:-1:3]}


def peel_to_commit(runner: GitRunner, repo: Path, name: str) -> str | None:
    """The commit `name` (sha, tag or branch in `repo`) points to, or None."""
    result = runner.run(
        ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}"],
        cwd=repo,
        check=False,
    )
    return result.stdout.strip() or None
