"""Reading specs from a directory, or from a commit of a git repository (`URL#REF:PATH`)."""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from reconciler.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.git import GitRunner, Remote
from reconciler.kinds.base.locations import check_location
from reconciler.redaction import Redactor, strip_userinfo
from reconciler.specs import SpecSet, load_directory
from reconciler.specs.filecache import FileCache

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class GitSpecSource:
    """`URL#REF:PATH`: the specs under PATH in the commit REF names."""

    url: str
    ref: str
    path: str

    @classmethod
    def parse(cls, text: str) -> GitSpecSource | None:
        """A git source, or None when `text` is a plain directory. Its location passes the
        same check as a spec's URLs (no `transport::address`, nothing git could read as an
        option, a supported scheme); a refused one raises SpecError."""
        location, hash_mark, fragment = text.partition("#")
        if not hash_mark and not _URL.match(text) and not text.rstrip("/").endswith(".git"):
            return None
        try:
            location = check_location(location, None)
        except ValueError as error:
            raise SpecError([SpecProblem(shown(text), None, f"--specs: {error}")]) from None
        ref, _, path = fragment.partition(":")
        return cls(location, ref or "HEAD", path.strip("/") or ".")

    def remote(self) -> Remote:
        """The repository; credentials written in the URL travel beside it (to git through
        GIT_ASKPASS, and to the redactor), never in a command line, a message or the store."""
        url, username, password = strip_userinfo(self.url)
        return Remote(url, username, password)


def shown(text: str) -> str:
    """`--specs` as printed and recorded: any credentials in a URL masked."""
    return Redactor()(text)


def load_specs(
    text: str,
    registry_models: Mapping[str, type[BaseModel]],
    cache_dir: Path,
    git: GitRunner,
    files: FileCache | None = None,
) -> SpecSet:
    """Load the specs `--specs` names; a git source is exported to the cache first. `files`
    keeps what each spec file loaded to, for the next load of a long-running process."""
    source = GitSpecSource.parse(text)
    if source is None:
        return load_directory(Path(text), registry_models, source=text, cache=files)
    commit, root = _export(source, cache_dir, git)
    return load_directory(
        root / source.path,
        registry_models,
        source=shown(text),
        commit=commit,
        display_root=_display_root(source, commit),
        cache=files,
    )


def _display_root(source: GitSpecSource, commit: str) -> str:
    """How messages name the exported directory: `URL@abc1234:specs` (`URL@abc1234`)."""
    where = f"{shown(source.url)}@{commit[:7]}"
    return where if source.path == "." else f"{where}:{source.path}"


def _export(source: GitSpecSource, cache_dir: Path, git: GitRunner) -> tuple[str, Path]:
    remote = source.remote()
    key = hashlib.sha256(remote.git_url().encode()).hexdigest()[:16]
    repo = cache_dir / "specs" / f"{key}.git"
    try:
        if not (repo / "HEAD").exists():
            git.run(["init", "--quiet", "--bare", "--", str(repo)])
        git.run(
            [
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                remote.git_url(),
                f"+{source.ref}:refs/specs/head",
            ],
            cwd=repo,
            remote=remote,
        )
        commit = git.run(["rev-parse", "refs/specs/head^{commit}"], cwd=repo).stdout.strip()
    except ReconcilerError as error:
        where = f"{shown(source.url)}#{source.ref}"
        raise SpecError([SpecProblem(where, None, str(error))]) from None
    root = cache_dir / "specs" / key / commit
    if not root.exists():
        outside = _extract(git, repo, commit, source.path, root)
        if outside:
            top = _display_root(source, commit)
            raise SpecError(
                [
                    SpecProblem(
                        f"{top}/{posixpath.relpath(name, source.path)}",
                        None,
                        f"a link to {target!r}, outside the commit: a git specs source is "
                        "read from its commit alone; commit the file itself",
                    )
                    for name, target in outside
                ]
            )
    return commit, root


def _extract(
    git: GitRunner, repo: Path, commit: str, path: str, root: Path
) -> list[tuple[str, str]]:
    """Export `path` of `commit` to `root`, as the files and links of the commit (a link is
    its target text: one to a file elsewhere in the commit brings that file along). Return
    the links named like spec files that lead outside the commit (then `root` is not made);
    other links leading out are left out."""
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    outside: list[tuple[str, str]] = []
    wanted = _unpack(git, repo, commit, [] if path == "." else [path], partial, outside)
    elsewhere = [t for t in wanted if not (partial / t).exists() and not _under(t, path)]
    if elsewhere:  # linked from the specs, outside their directory: only what exists
        listed = git.run(["ls-tree", "--name-only", commit, "--", *elsewhere], cwd=repo)
        present = [name for name in listed.stdout.splitlines() if name]
        if present:
            _unpack(git, repo, commit, present, partial, [])
    outside = [(n, t) for n, t in outside if _spec_name(n)]
    if not outside:
        partial.replace(root)
    return outside


def _unpack(
    git: GitRunner,
    repo: Path,
    commit: str,
    paths: list[str],
    into: Path,
    outside: list[tuple[str, str]],
) -> list[str]:
    """Extract `paths` of `commit` into `into`; links leading out of the commit are left
    out and added to `outside` (name, target). Return where the links kept point to."""
    try:
        archive = git.output(
            ["archive", "--format=tar", "--end-of-options", commit, *paths], cwd=repo
        )
    except ReconcilerError as error:
        where = f"{commit[:7]}:{','.join(paths) or '.'}"
        raise SpecError([SpecProblem(where, None, str(error))]) from None
    targets: list[str] = []

    def keep(member: tarfile.TarInfo, destination: str) -> tarfile.TarInfo | None:
        if member.issym():
            target = posixpath.normpath(
                posixpath.join(posixpath.dirname(member.name), member.linkname)
            )
            if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
                outside.append((member.name, member.linkname))
                return None
            targets.append(target)
        try:
            return tarfile.data_filter(member, destination)
        except tarfile.FilterError:  # a link through another link that leads out
            outside.append((member.name, member.linkname))
            return None

    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(into, filter=keep)
    return targets


def _under(name: str, path: str) -> bool:
    return path == "." or name == path or name.startswith(path.rstrip("/") + "/")


def _spec_name(name: str) -> bool:
    """Whether the loader would read a file of this name (a spec, not hidden)."""
    parts = name.split("/")
    return name.endswith((".yaml", ".yml")) and not any(p.startswith(".") for p in parts)
