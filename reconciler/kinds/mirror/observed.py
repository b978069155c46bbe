"""What observation of a Mirror finds: ref listings of sources and destinations."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, Field

from reconciler.kinds.mirror.model import MirrorSpec


class DestinationObserved(BaseModel):
    """One destination repository, as listed (only refs inside the filters)."""

    url: str
    exists: bool = True
    refs: dict[str, str] = Field(default_factory=dict)
    error: str | None = None
    # For each branch that differs from the source: is the destination's tip an ancestor?
    fast_forward: dict[str, bool] = Field(default_factory=dict)


class RepoObserved(BaseModel):
    """One source repository and its destinations."""

    repo: str
    source: str
    refs: dict[str, str] = Field(default_factory=dict)
    head: str | None = None
    error: str | None = None
    destinations: list[DestinationObserved] = Field(default_factory=list)


class MirrorObserved(BaseModel):
    """Everything observed for one Mirror resource."""

    repos: list[RepoObserved] = Field(default_factory=list)
    error: str | None = None
    left_out: list[str] = Field(default_factory=list)  # found by discovery, names unusable


def selected(ref: str, spec: MirrorSpec) -> bool:
    """True when `ref` is a branch or tag inside the spec's filters (nothing else ever is)."""
    if ref.startswith("refs/heads/"):
        patterns, name = spec.branches, ref.removeprefix("refs/heads/")
    elif ref.startswith("refs/tags/"):
        patterns, name = spec.tags, ref.removeprefix("refs/tags/")
    else:
        return False
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def filtered(refs: dict[str, str], spec: MirrorSpec) -> dict[str, str]:
    """`refs` restricted to the spec's filters."""
    return {ref: sha for ref, sha in refs.items() if selected(ref, spec)}
