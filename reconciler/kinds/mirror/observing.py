"""Observing a Mirror: ref listings only, plus ancestry answered from the local object cache."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from reconciler.errors import ReconcilerError
from reconciler.git import ObjectCache, Remote, list_refs
from reconciler.kinds.base import Context
from reconciler.kinds.mirror.model import REPO_PLACEHOLDER, MirrorSpec, repo_name_problem
from reconciler.kinds.mirror.observed import (
    DestinationObserved,
    MirrorObserved,
    RepoObserved,
    filtered,
)


def observe_mirror(spec: MirrorSpec, context: Context) -> MirrorObserved:
    """List the refs of every source and destination, then answer ancestry questions
    (fetching into the caches) for the repositories whose branches differ, in parallel."""
    try:
        repos, left_out = repository_names(spec)
    except OSError as error:
        return MirrorObserved(error=context.redact(f"cannot discover repositories: {error}"))
    workers = max(1, context.parallelism)
    if all(Remote(r.url).is_local for r in [spec.source, *spec.destinations]):
        # Local listings are pure Python under the GIL: threads would only add overhead.
        observed = [_observe_repo(spec, repo, context) for repo in repos]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            observed = list(pool.map(lambda repo: _observe_repo(spec, repo, context), repos))
    differing = [repo for repo in observed if _differing_branches(repo)]
    if differing:  # fetches are git processes: these run in parallel
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda repo: _ancestry(spec, repo, context), differing))
    return MirrorObserved(repos=observed, left_out=left_out)


def _differing_branches(repo: RepoObserved) -> bool:
    return repo.error is None and any(
        dest.refs.get(ref) not in (None, sha)
        for dest in repo.destinations
        for ref, sha in repo.refs.items()
        if ref.startswith("refs/heads/")
    )


def _ancestry(spec: MirrorSpec, repo: RepoObserved, context: Context) -> None:
    if repo.error is None:
        cache = source_cache(spec, repo.repo, context)
        repo.error = _answer_ancestry(repo.refs, repo.destinations, cache)


class Repositories(NamedTuple):
    """The repositories a spec covers, and the directories discovery found but leaves out."""

    names: list[str]
    left_out: list[str]


def repository_names(spec: MirrorSpec) -> Repositories:
    """The repositories a spec covers; `["*"]` lists the bare repositories of the source dir,
    leaving out (and naming) those whose name cannot fill `{repo}` (model.repo_name_problem)."""
    if spec.repos is None:
        name = spec.source.url.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        return Repositories([name.removesuffix(".git") or name], [])
    if spec.repos != ["*"]:
        return Repositories(list(spec.repos), [])
    template = Remote(spec.source.url).local_path
    prefix, suffix = template.name.split(REPO_PLACEHOLDER, 1)
    found = Repositories([], [])
    for entry in sorted(template.parent.iterdir()):
        name = entry.name
        fits = (
            name.startswith(prefix) and name.endswith(suffix) and len(name) > len(prefix + suffix)
        )
        if fits and ((entry / "HEAD").is_file() or (entry / ".git" / "HEAD").is_file()):
            repo = name[len(prefix) : len(name) - len(suffix)]
            (found.left_out if repo_name_problem(repo) else found.names).append(repo)
    return found


def source_cache(spec: MirrorSpec, repo: str, context: Context) -> ObjectCache:
    """The object cache of one source repository."""
    return ObjectCache(context.cache_dir / "mirror", spec.source.remote(repo), context.git)


def _observe_repo(spec: MirrorSpec, repo: str, context: Context) -> RepoObserved:
    source = spec.source.remote(repo)
    try:
        listing = list_refs(source, context.redact)
    except ReconcilerError as error:
        return RepoObserved(repo=repo, source=source.url, error=str(error))
    refs = filtered(listing.refs, spec)
    destinations = [_observe_destination(d.remote(repo), spec, context) for d in spec.destinations]
    return RepoObserved(
        repo=repo, source=source.url, refs=refs, head=listing.head, destinations=destinations
    )


def _observe_destination(remote: Remote, spec: MirrorSpec, context: Context) -> DestinationObserved:
    if not remote.exists():
        foreign = _foreign(remote.local_path) if remote.is_local else None
        return DestinationObserved(url=remote.url, exists=False, error=foreign)
    try:
        listing = list_refs(remote, context.redact)
    except ReconcilerError as error:
        return DestinationObserved(url=remote.url, error=str(error))
    return DestinationObserved(url=remote.url, refs=filtered(listing.refs, spec))


# What `git init` writes, in its order: templates, refs/, HEAD, config, then objects/. A
# directory holding only these is one a killed `git init` left (completed by the next one).
_TEMPLATE_ENTRIES = frozenset({"branches", "description", "hooks", "info", "refs"})
_INIT_ENTRIES = _TEMPLATE_ENTRIES | {"HEAD", "config", "objects", "packed-refs"}


def _foreign(path: Path) -> str | None:
    """Why a missing destination must not be created at `path`: something that is not a git
    repository is there (a file, or a directory of the user's own). None: absent, empty, or
    what a killed `git init` left (HEAD comes before config, so a lone `config` is not)."""
    if not os.path.lexists(path):
        return None
    refusal = f"{path} exists and is not a git repository; reconciler leaves it untouched"
    if path.is_symlink() or not path.is_dir():
        return refusal
    try:
        # git writes HEAD and config through `NAME.lock` files: a kill can leave one.
        entries = {entry.name.removesuffix(".lock") for entry in path.iterdir()}
    except OSError as error:
        return f"{path} cannot be read: {error.strerror}"
    half_made = entries <= _INIT_ENTRIES and ("HEAD" in entries or entries <= _TEMPLATE_ENTRIES)
    return None if half_made else refusal


def _answer_ancestry(
    source: dict[str, str], destinations: list[DestinationObserved], cache: ObjectCache
) -> str | None:
    """Fill `fast_forward` for branches that differ (fetching the source only then); or an error."""
    pairs = {
        (dest.refs[ref], sha)
        for dest in destinations
        for ref, sha in source.items()
        if ref.startswith("refs/heads/") and dest.refs.get(ref) not in (None, sha)
    }
    if not pairs:
        return None
    try:
        cache.ensure_objects(new for _, new in pairs)
    except ReconcilerError as error:
        return f"cannot fetch the source to compare histories: {error}"
    answers = cache.fast_forwards(pairs)
    for dest in destinations:
        for ref, sha in source.items():
            old = dest.refs.get(ref)
            if old is not None and (old, sha) in answers:
                dest.fast_forward[ref] = answers[(old, sha)]
    return None
