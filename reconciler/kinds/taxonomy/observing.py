"""Observing a Taxonomy: list each target's branch, read its file at the tip (through a
local cache, fetched only when the tip is new), and load the version last applied to it."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.git import list_refs
from reconciler.git.files import FileBranch
from reconciler.kinds.base import Context
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observed import TargetObserved, TaxonomyObserved
from reconciler.kinds.taxonomy.versions import spec_content, version_terms
from reconciler.store.contents import version_content, version_digest


def observe_taxonomy(address: str, spec: TaxonomySpec, context: Context) -> TaxonomyObserved:
    """Observe every target of the spec, in parallel."""
    record = context.store.resource(address)
    state: dict[str, Any] = record.state if record else {}

    def one(target: TargetSpec) -> TargetObserved:
        """One target, with the version last applied to it as its base."""
        unit_state = state.get(target.unit)
        version = unit_state.get("version") if isinstance(unit_state, dict) else None
        return observe_target(address, target, version, context, spec)

    with ThreadPoolExecutor(max_workers=max(1, context.parallelism)) as pool:
        return TaxonomyObserved(targets=list(pool.map(one, spec.targets)))


def observe_target(
    address: str,
    target: TargetSpec,
    base_version: int | None,
    context: Context,
    spec: TaxonomySpec | None = None,
) -> TargetObserved:
    """The target's branch tip and file now, and its base version (read once per `spec`)."""
    try:
        listing = list_refs(target.remote(), context.redact)
    except ReconcilerError as error:
        return TargetObserved(unit=target.unit, error=str(error))
    tip = listing.refs.get(f"refs/heads/{target.branch}")
    try:
        return snapshot(address, target, tip, base_version, context, spec)
    except ReconcilerError as error:
        return TargetObserved(unit=target.unit, tip=tip, error=context.redact(str(error)))


def snapshot(
    address: str,
    target: TargetSpec,
    tip: str | None,
    base_version: int | None,
    context: Context,
    spec: TaxonomySpec | None = None,
) -> TargetObserved:
    """The target's file at commit `tip` and the stored base version (what apply re-reads);
    raises ReconcilerError when the commit cannot be fetched or read. With `spec`, a base
    that is the spec's own content is not read at all, and another is read once for every
    target and for apply."""
    observed = TargetObserved(unit=target.unit, tip=tip)
    if base_version is not None:
        digest = version_digest(context.store, address, base_version)
        if digest is not None:
            observed.base_version, observed.base_digest = base_version, digest
            _read_base(observed, address, base_version, digest, context, spec)
    if tip is None:
        return observed
    files = branch_files(target, context)
    link = files.link_in_working_copy(target.branch, target.path)
    if link is not None:
        raise ReconcilerError(link)
    files.fetch(target.branch, tip)
    data = _read(files, tip, target.path)
    if data is not None:
        observed.file_sha256 = hashlib.sha256(data).hexdigest()
        try:
            observed.text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            observed.error = f"{target.path} at {tip[:7]} is not UTF-8 text (byte {error.start})"
    return observed


def _read_base(
    observed: TargetObserved,
    address: str,
    number: int,
    digest: str,
    context: Context,
    spec: TaxonomySpec | None,
) -> None:
    if spec is None:
        observed.base = version_content(context.store, address, number)
    elif digest == spec_content(address.partition("/")[2], spec).digest:
        observed.base_terms = spec.taxonomy
    else:
        name = address.partition("/")[2]
        read = lambda: version_terms(address, number, name, spec, context)  # noqa: E731
        observed.base_terms = spec.memo(("base", digest), read)


def _read(files: FileBranch, tip: str, path: str) -> bytes | None:
    """The file at `tip`; an object that cannot be read blocks the target with the reason
    instead of escaping as an internal error (or passing for a missing file)."""
    try:
        return files.read(tip, path)
    except ReconcilerError:
        raise
    except Exception as error:  # dulwich: a missing or corrupt object (KeyError, checksum ...)
        detail = f"{type(error).__name__}: {error}"
        raise ReconcilerError(
            f"cannot read {path} at {tip[:7]} from the cache {files.path} ({detail}); "
            "deleting that cache makes the next run fetch it again"
        ) from None


def branch_files(target: TargetSpec, context: Context) -> FileBranch:
    """The cache through which a target's file is read and written."""
    return FileBranch(context.cache_dir / "taxonomy", target.remote(), context.git)
