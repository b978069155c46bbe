"""Reading specs from a directory, or from a commit of a git repository (`URL#REF:PATH`)."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from reconciler.errors import ReconcilerError, SpecError, SpecProblem
from reconciler.git import GitRunner, Remote
from reconciler.redaction import Redactor, strip_userinfo
from reconciler.specs import SpecSet, load_directory

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class GitSpecSource:
    """`URL#REF:PATH`: the specs under PATH in the commit REF names."""

    url: str
    ref: str
    path: str

    @classmethod
    def parse(cls, text: str) -> GitSpecSource | None:
        """A git source, or None when `text` is a plain directory."""
        location, hash_mark, fragment = text.partition("#")
        if not hash_mark and not _URL.match(text) and not text.rstrip("/").endswith(".git"):
            return None
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
) -> SpecSet:
    """Load the specs `--specs` names; a git source is exported to the cache first."""
    source = GitSpecSource.parse(text)
    if source is None:
        return load_directory(Path(text), registry_models, source=text)
    commit, root = _export(source, cache_dir, git)
    display = f"{shown(source.url)}@{commit[:7]}:" + ("" if source.path == "." else source.path)
    return load_directory(
        root / source.path,
        registry_models,
        source=shown(text),
        commit=commit,
        display_root=display.rstrip(":/") if source.path == "." else display,
    )


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
        _extract(git, repo, commit, source.path, root)
    return commit, root


def _extract(git: GitRunner, repo: Path, commit: str, path: str, root: Path) -> None:
    args = ["archive", "--format=tar", "--end-of-options", commit] + ([] if path == "." else [path])
    try:
        archive = git.output(args, cwd=repo)
    except ReconcilerError as error:
        raise SpecError([SpecProblem(f"{commit[:7]}:{path}", None, str(error))]) from None
    partial = root.with_name(root.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(partial, filter="data")
    partial.replace(root)
