"""Applying a Taxonomy action: re-read the target exactly as planned, merge again (pure, so
the same file comes out), keep the spec's content as a version, commit, publish.

One commit per target, only when its content changes, by a fixed author, with a message
naming the taxonomy, the version and the spec commit. Publishing is compare-and-swap on the
branch; when the branch moved but the file did not (another target in the same repository,
an unrelated commit), the commit is rebuilt on the new tip.
"""

from __future__ import annotations

from typing import Any

from reconciler.errors import PermanentError, TemporaryError
from reconciler.git import list_refs
from reconciler.kinds.base import Action, ActionResult, Context
from reconciler.kinds.taxonomy.changes import counts
from reconciler.kinds.taxonomy.documents import DocumentError
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observing import branch_files, snapshot
from reconciler.kinds.taxonomy.planning import TargetMerge, base_of, file_key, merge_target
from reconciler.kinds.taxonomy.versions import record_version
from reconciler.specs import Resource

AUTHOR = "reconciler <reconciler@localhost>"
_ATTEMPTS = 3
_LISTED = 100  # term ids (and conflicts) listed per category in a history entry


def apply_target(
    resource: Resource, spec: TaxonomySpec, action: Action, context: Context
) -> ActionResult:
    """Write (or adopt) one target as its action's first step says."""
    head = action.steps[0]
    target = spec.target(action.unit)
    if target is None:
        raise PermanentError(f"{action.unit} is no longer a target of {resource.address}")
    record = context.store.resource(resource.address)
    last = record.state.get(target.unit) if record is not None else None
    last = last if isinstance(last, dict) else None
    observed = snapshot(resource.address, target, head.get("from"), head.get("base"), context, spec)
    if observed.error:
        raise PermanentError(observed.error)
    try:
        merged = merge_target(resource.name, spec, target, observed, state=last)
    except DocumentError as error:
        raise PermanentError(f"cannot parse {target.path}: {error}") from None
    if head["op"] == "write" and merged.digest != head.get("digest"):
        raise PermanentError(
            f"{target.path}: the merge no longer gives the planned file; plan again"
        )
    known = (observed.base_digest, base_of(observed))
    version = record_version(resource.address, resource.name, spec, context, known)
    if head["op"] == "adopt":
        summary = f"v{version} ({len(merged.result.terms)} terms): the file already matched"
        state = _state(target, version, observed.tip, merged)
        return ActionResult("done", summary, state, {"unit": target.unit, "summary": summary})
    message = commit_message(resource.name, f"version {version}", merged, context)
    commit = publish_file(target, observed.tip, merged.text, message, context)
    return written(target, version, commit, merged, spec.conflictStrategy)


def _state(
    target: TargetSpec, version: int, commit: str | None, merged: TargetMerge
) -> dict[str, Any]:
    """What the target's record keeps: the version it was given, the commit, and (when the
    file is exactly that version) the file's digest, which lets the next plan skip it."""
    state: dict[str, Any] = {"version": version, "commit": commit}
    if merged.exact:
        state["file"] = file_key(target, merged.digest)
    return state


def written(
    target: TargetSpec, version: int, commit: str, merged: TargetMerge, strategy: str
) -> ActionResult:
    """The result of a commit to one target, with its history entry."""
    changes = what_changed(merged)
    conflicts = [c.to_json() for c in merged.result.conflicts]
    summary = f"v{version} ({len(merged.result.terms)} terms) -> {commit[:7]}: {counts(changes)}"
    if conflicts:
        summary += f"; {len(conflicts)} conflicts resolved ({strategy} wins)"
    history = {
        "unit": target.unit,
        "summary": summary,
        "version": version,
        "terms": len(merged.result.terms),
        "commit": commit,
        "counts": {category: len(ids) for category, ids in changes.items()},
        "changes": {category: ids[:_LISTED] for category, ids in changes.items()},
        "conflicts": conflicts[:_LISTED],
    }
    state = _state(target, version, commit, merged)
    return ActionResult("done", f"committed {commit[:7]} to {target.branch}", state, history)


def what_changed(merged: TargetMerge) -> dict[str, list[str]]:
    """The file's term changes by category (DeepDiff describes the changed terms)."""
    return merged.what_changed


def commit_message(name: str, what: str, merged: TargetMerge, context: Context) -> str:
    """`taxonomy NAME: version 3`, what changed, and the spec commit."""
    commit = context.spec_commit or "none (specs read from a directory)"
    return (
        f"taxonomy {name}: {what}\n\n"
        f"{len(merged.result.terms)} terms: {counts(what_changed(merged))}\n"
        f"Spec commit: {commit}\n"
    )


def publish_file(
    target: TargetSpec, parent: str | None, text: str, message: str, context: Context
) -> str:
    """Commit `text` at the target's path on top of `parent` and publish it; returns the
    commit. Rebuilds on a moved branch tip only when the file itself did not change."""
    files = branch_files(target, context)
    expected = parent
    for _ in range(_ATTEMPTS):
        commit = files.commit(expected, target.path, text.encode(), message, AUTHOR)
        published = files.publish(target.branch, commit, expected)
        if published.ok:
            return commit
        refs = list_refs(target.remote(), context.redact).refs
        now = refs.get(f"refs/heads/{target.branch}")
        if now == expected or now is None:
            raise PermanentError(f"{target.branch}: {context.redact(published.message)}")
        files.fetch(target.branch, now)
        before = files.read(expected, target.path) if expected else None
        if files.read(now, target.path) != before:
            raise PermanentError(
                f"{target.path} changed on {target.branch} since the plan "
                f"(now at {now[:7]}); plan again"
            )
        expected = now
    raise TemporaryError(f"{target.branch} kept moving while reconciler published to it")
