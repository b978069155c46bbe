"""One file on one branch of a repository: read it at a commit, commit a new version of it,
publish the commit compare-and-swap.

A bare cache per repository (under the state directory) holds the branch's objects: the
git CLI fetches into it, dulwich reads blobs and writes the new blob, trees and commit
in-process (no checkout, no index), and `git push --force-with-lease` publishes. A local
working copy whose checked-out branch is the target is fast-forwarded with
`git merge --ff-only` instead, which refuses to overwrite uncommitted changes.

A file is never read or written through a symbolic link: a link on the way to it (in the
commit, or in the working copy that would be fast-forwarded) is an error naming the link.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from dulwich.object_store import commit_tree_changes
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.repo import Repo

from reconciler.errors import GitError
from reconciler.git.cache import BareCache, cache_lock
from reconciler.git.push import RefUpdate, push

_FILE_MODE = 0o100644


@dataclass(frozen=True)
class Published:
    """What publishing a commit did: ok, or git's reason for refusing it."""

    ok: bool
    message: str


class FileBranch(BareCache):
    """The cache of one repository, for reading and writing files on its branches."""

    def has(self, commit: str) -> bool:
        """True when the cache holds `commit`."""
        if not self.exists():
            return False
        repo = Repo(str(self.path))
        try:
            return ObjectID(commit.encode()) in repo.object_store
        finally:
            repo.close()

    def fetch(self, branch: str, commit: str) -> None:
        """Fetch `branch` into the cache unless `commit` (its tip, as listed) is there."""
        with cache_lock(self.path):
            if self.has(commit):
                return
            self._ensure()
            ref = f"refs/heads/{branch}"
            refspec = f"+{ref}:{ref}"
            args = [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                self.remote.git_url(),
            ]
            self.runner.run([*args, refspec], cwd=self.path, remote=self.remote)
            if not self.has(commit):
                raise GitError(f"{self.remote}: {branch} moved while it was fetched; try again")

    def read(self, commit: str, path: str) -> bytes | None:
        """The file's bytes at `commit`, or None when it has no such file."""
        repo = Repo(str(self.path))
        try:
            root = repo[ObjectID(commit.encode())]
            assert isinstance(root, Commit)
            found = _lookup(repo, root, path)
            if found is None:
                return None
            blob = repo[found[1]]
            if not isinstance(blob, Blob):
                raise GitError(f"{path} is a directory at {commit[:7]}, not a file")
            return blob.as_raw_string()
        finally:
            repo.close()

    def link_in_working_copy(self, branch: str, path: str) -> str | None:
        """For a working copy that has `branch` checked out (and so would be fast-forwarded):
        the first component of `path` that is a symbolic link there, described; else None."""
        if not self._checked_out(branch):
            return None
        work = self.remote.local_path
        parts = path.split("/")
        for index in range(len(parts)):
            place = work.joinpath(*parts[: index + 1])
            try:
                is_link = stat.S_ISLNK(os.lstat(place).st_mode)
            except OSError:
                return None
            if is_link:
                shown = "/".join(parts[: index + 1])
                return (
                    f"{shown} is a symbolic link (to {os.readlink(place)}) in the working copy "
                    f"{work}; reconciler never writes a file through a link"
                )
        return None

    def commit(
        self, parent: str | None, path: str, content: bytes, message: str, author: str
    ) -> str:
        """Write a commit on top of `parent` (None: a root commit) that sets `path` to
        `content`; returns its sha. Author and committer are `author` (`Name <email>`)."""
        with cache_lock(self.path):
            self._ensure()
            repo = Repo(str(self.path))
            try:
                return _write_commit(repo, parent, path, content, message, author)
            finally:
                repo.close()

    def publish(self, branch: str, new: str, expected: str | None) -> Published:
        """Set the remote's `branch` to `new` only if it is still at `expected` (None: absent)."""
        ref = f"refs/heads/{branch}"
        if self._checked_out(branch):
            return self._fast_forward(branch, new, expected)
        (outcome,) = push(self.runner, self.path, self.remote, [RefUpdate(ref, new, expected)])
        return Published(outcome.ok, outcome.summary)

    def _checked_out(self, branch: str) -> bool:
        """True for a local non-bare repository whose HEAD is `branch`."""
        if not self.remote.is_local or not (self.remote.local_path / ".git").exists():
            return False
        head = self.runner.run(
            ["symbolic-ref", "--quiet", "HEAD"], cwd=self.remote.local_path, check=False
        )
        return head.stdout.strip() == f"refs/heads/{branch}"

    def _fast_forward(self, branch: str, new: str, expected: str | None) -> Published:
        work = self.remote.local_path
        now = self.runner.run(["rev-parse", "--verify", "--quiet", "HEAD"], cwd=work, check=False)
        if (now.stdout.strip() or None) != expected:
            return Published(False, f"stale info: {branch} is no longer at {expected}")
        outgoing = f"refs/reconciler/outgoing/{branch}"
        self.runner.run(["update-ref", "--", outgoing, new], cwd=self.path)
        fetch = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--",
            str(self.path),
            outgoing,
        ]
        self.runner.run(fetch, cwd=work)
        merged = self.runner.run(
            ["merge", "--ff-only", "--quiet", "--end-of-options", new], cwd=work, check=False
        )
        if merged.returncode != 0:
            lines = [line for line in merged.stderr.splitlines() if line.strip()]
            return Published(False, "; ".join(lines[:3]) or "merge --ff-only failed")
        return Published(True, "fast-forwarded the working copy")


def _write_commit(
    repo: Repo, parent: str | None, path: str, content: bytes, message: str, author: str
) -> str:
    store = repo.object_store
    blob = Blob.from_string(content)
    store.add_object(blob)
    tree: Tree | ObjectID = Tree()
    mode = _FILE_MODE
    parents = []
    if parent is not None:
        head = repo[ObjectID(parent.encode())]
        assert isinstance(head, Commit)
        tree, parents = head.tree, [head.id]
        found = _lookup(repo, head, path)
        if found is not None:
            mode = found[0] if found[0] in (0o100644, 0o100755) else _FILE_MODE
    commit = Commit()
    commit.tree = commit_tree_changes(store, tree, [(path.encode(), mode, blob.id)])
    commit.parents = parents
    commit.author = commit.committer = author.encode()
    commit.author_time = commit.commit_time = int(time.time())
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode()
    store.add_object(commit)
    return commit.id.decode()


def _lookup(repo: Repo, commit: Commit, path: str) -> tuple[int, ObjectID] | None:
    """Mode and id of `path` in `commit`'s tree, None when it is not there; GitError when a
    component is a symbolic link (never followed) or a file where a directory should be."""
    parts = path.split("/")
    current, mode, at = commit.tree, 0, commit.id[:7].decode()
    for index, part in enumerate(parts):
        tree = repo[current]
        if not isinstance(tree, Tree):
            shown = "/".join(parts[:index])
            raise GitError(
                f"{path}: {shown} is a file at {commit.id[:7].decode()}, not a directory"
            )
        try:
            mode, current = tree[part.encode()]
        except KeyError:
            return None
        if stat.S_ISLNK(mode):
            shown = "/".join(parts[: index + 1])
            target = repo[current].as_raw_string().decode(errors="replace")
            raise GitError(
                f"{shown} is a symbolic link (to {target}) at {at}; "
                "reconciler never writes a file through a link"
            )
    return mode, current
