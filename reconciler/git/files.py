"""One file on one branch of a repository: read it at a commit, commit a new version of it,
publish the commit compare-and-swap.

A bare cache per repository (under the state directory) holds the branch's objects: the
git CLI fetches into it, dulwich reads blobs and writes the new blob, trees and commit
in-process (no checkout, no index), and `git push --force-with-lease` publishes. A local
working copy whose checked-out branch is the target is fast-forwarded with
`git merge --ff-only` instead, which refuses to overwrite uncommitted changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dulwich.errors import NotTreeError
from dulwich.object_store import commit_tree_changes, tree_lookup_path
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
        if not (self.path / "HEAD").exists():
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
            args = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.remote.git_url()]
            self.runner.run([*args, refspec], cwd=self.path, remote=self.remote)
            if not self.has(commit):
                raise GitError(f"{self.remote}: {branch} moved while it was fetched; try again")

    def read(self, commit: str, path: str) -> bytes | None:
        """The file's bytes at `commit`, or None when it has no such file."""
        repo = Repo(str(self.path))
        try:
            root = repo[ObjectID(commit.encode())]
            assert isinstance(root, Commit)
            try:
                _, sha = tree_lookup_path(repo.__getitem__, root.tree, path.encode())
            except KeyError:
                return None
            except NotTreeError:
                raise GitError(f"{path}: a parent directory is a file at {commit[:7]}") from None
            blob = repo[sha]
            if not isinstance(blob, Blob):
                raise GitError(f"{path} is a directory at {commit[:7]}, not a file")
            return blob.as_raw_string()
        finally:
            repo.close()

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
        self.runner.run(["update-ref", outgoing, new], cwd=self.path)
        fetch = ["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", str(self.path), outgoing]
        self.runner.run(fetch, cwd=work)
        merged = self.runner.run(["merge", "--ff-only", "--quiet", new], cwd=work, check=False)
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
        try:
            existing, _ = tree_lookup_path(repo.__getitem__, head.tree, path.encode())
            mode = existing if existing in (0o100644, 0o100755) else _FILE_MODE
        except KeyError:
            pass
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
