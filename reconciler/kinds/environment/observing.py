"""Observing an Environment: the commit its ref names, what `current` runs, drift, and the
health of the environments it requires (read from the store)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field

from reconciler.errors import ReconcilerError
from reconciler.git import ObjectCache, Remote, list_refs, peel_to_commit
from reconciler.kinds.base import Context
from reconciler.kinds.environment.manifests import drift, read_manifest
from reconciler.kinds.environment.model import EnvironmentSpec
from reconciler.kinds.environment.releases import Layout, read_failure
from reconciler.specs import Resource

_SHA = re.compile(r"^[0-9a-f]{7,40}\Z")


class RequiredObserved(BaseModel):
    """A required environment, as the store last saw it."""

    sha: str | None = None
    healthy: bool = False
    message: str = "never deployed"


class EnvironmentObserved(BaseModel):
    """Everything observed for one Environment."""

    ref: str
    sha: str | None = None
    error: str | None = None
    current: str | None = None
    current_sha: str | None = None
    slot: str | None = None
    link_problem: str | None = None
    refused: list[str] = Field(default_factory=list)  # links leading out of the directory
    drift: list[str] = Field(default_factory=list)
    releases: list[str] = Field(default_factory=list)
    failed: dict[str, str] | None = None  # recorded on disk: the commit that failed, where
    required: dict[str, RequiredObserved] = Field(default_factory=dict)


def source_remote(resource: Resource, context: Context) -> Remote:
    """The repository an environment deploys from (a Mirror's first destination, if named)."""
    spec = _spec(resource)
    if spec.source.mirror is None:
        return spec.source.remote()
    return context.repository(f"Mirror/{spec.source.mirror}", spec.source.repo)


def source_cache(resource: Resource, context: Context) -> ObjectCache:
    """The object cache of the source repository (shared with mirrors of the same URL)."""
    return ObjectCache(context.cache_dir / "mirror", source_remote(resource, context), context.git)


def observe_environment(resource: Resource, context: Context) -> EnvironmentObserved:
    """Resolve the ref, read the links and manifests; never changes the environment."""
    spec = _spec(resource)
    observed = EnvironmentObserved(ref=spec.source.ref)
    try:
        observed.sha = resolve(resource, context)
    except ReconcilerError as error:
        observed.error = context.redact(str(error))
    layout = Layout(Path(spec.target.path))
    observed.required = {name: _required(name, context) for name in spec.requires}
    observed.refused = layout.refusals()
    if observed.refused:  # read nothing through a link that leads outside
        return observed
    observed.releases = layout.names()
    observed.failed = read_failure(layout)
    observed.slot = layout.active_slot()
    observed.current = layout.current_release()
    if observed.current is None:
        if layout.current.is_symlink():
            observed.link_problem = "`current` points to a missing release"
    elif not layout.release(observed.current).is_dir():
        observed.link_problem = f"`current` points to {observed.current}, which is gone"
    else:
        manifest = read_manifest(layout, observed.current) or {}
        observed.current_sha = manifest.get("sha")
        observed.drift = drift(layout, observed.current)
    return observed


def resolve(resource: Resource, context: Context) -> str:
    """The commit the spec's ref names at the source (fetching it into the cache if needed)."""
    ref = _spec(resource).source.ref
    remote = source_remote(resource, context)
    refs = list_refs(remote, context.redact).refs
    names = [ref, f"refs/heads/{ref}", f"refs/tags/{ref}"]
    listed = next((refs[n] for n in names if n in refs), None)
    if listed is None and not _SHA.match(ref):
        raise ReconcilerError(f"{remote}: no branch or tag {ref!r}")
    cache = source_cache(resource, context)
    if listed is not None:
        cache.ensure_objects([listed])
    commit = cache.exists() and peel_to_commit(context.git, cache.path, listed or ref)
    if not commit and listed is None:  # a sha the cache has not seen yet
        cache.refresh()
        commit = peel_to_commit(context.git, cache.path, ref)
    if not commit:
        raise ReconcilerError(f"{remote}: {ref!r} does not name a commit")
    return commit


def _required(name: str, context: Context) -> RequiredObserved:
    record = context.store.resource(f"Environment/{name}")
    if record is None:
        return RequiredObserved()
    units = [u for u in record.state.values() if isinstance(u, dict)]
    current = units[0].get("current_sha") if units else None
    healthy = record.outcome == "done"
    return RequiredObserved(sha=current, healthy=healthy, message=record.message or "")


def _spec(resource: Resource) -> EnvironmentSpec:
    assert isinstance(resource.spec, EnvironmentSpec)
    return resource.spec
