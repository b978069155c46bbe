"""Pure planning of a Taxonomy: per target, merge (base, spec, file) and show the term-level
changes the file would get. No I/O here; apply re-runs `merge_target` on the same inputs.

Per target, one action whose first step is `write` (commit the merged file) or `adopt`
(the file already matches: record the spec's version as the target's base), followed by
the resolved conflicts and one step per changed term (add, remove, update, merge).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from reconciler.kinds.base import Action, ChangeAction, ResourcePlan, Step
from reconciler.kinds.taxonomy.changes import TermChange, describe, term_changes
from reconciler.kinds.taxonomy.documents import DocumentError, document, from_content, parse, render
from reconciler.kinds.taxonomy.folding import Fold
from reconciler.kinds.taxonomy.merging import MergeResult, merge
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observed import TargetObserved, TaxonomyObserved
from reconciler.kinds.taxonomy.terms import Taxonomy
from reconciler.kinds.taxonomy.versions import spec_content
from reconciler.store import ResourceRecord

_PAST = {"add": "added", "remove": "removed", "update": "updated", "merge": "merged"}


@dataclass(frozen=True)
class TargetMerge:
    """The merge of one target: its current terms, the result, and the file to write."""

    theirs: Taxonomy | None
    result: MergeResult
    text: str
    changes: list[TermChange]

    exact: bool = False  # the file written is exactly the spec's version (nothing merged in)

    @cached_property
    def digest(self) -> str:
        """sha256 of the file to write (a saved plan's apply must produce the same)."""
        return hashlib.sha256(self.text.encode()).hexdigest()

    @cached_property
    def what_changed(self) -> dict[str, list[str]]:
        """The file's term changes by category (DeepDiff describes the changed terms)."""
        if self.theirs is None:
            return {"added": sorted(self.result.terms)}
        return describe(self.theirs, self.result.terms, [c.term for c in self.changes])


def file_key(target: TargetSpec, sha256: str) -> str:
    """What a target's state records of a file that is exactly the version it was given:
    `format:sha256` (format included: the same content renders differently)."""
    return f"{target.format}:{sha256}"


def base_of(observed: TargetObserved) -> Taxonomy | None:
    """The terms of the target's base version (None: never applied)."""
    if observed.base_terms is not None:
        terms: Taxonomy = observed.base_terms
        return terms
    return from_content(observed.base) if observed.base is not None else None


def merge_target(
    name: str,
    spec: TaxonomySpec,
    target: TargetSpec,
    observed: TargetObserved,
    ours: Taxonomy | None = None,
    state: dict[str, Any] | None = None,
) -> TargetMerge:
    """Merge the target's file with `ours` (default: the spec; a rollback passes a stored
    version) from its base; raises DocumentError when the file is not a taxonomy document.

    The spec's merge is computed once per observation (the same tip, file and base): apply
    reuses the plan's. `state` is what the target's last apply left: when it says the file
    is exactly its base version (`file_key`), that file is the base's terms, not re-read."""
    if ours is not None or (observed.base is not None and observed.base_digest is None):
        return _merge(name, spec, target, observed, ours, state)
    key: tuple[object, ...] = ("merge", target.unit, target.format, observed.tip)
    key += (observed.file_sha256, observed.base_digest, (state or {}).get("file"))
    return spec.memo(key, lambda: _merge(name, spec, target, observed, None, state))


def _merge(
    name: str,
    spec: TaxonomySpec,
    target: TargetSpec,
    observed: TargetObserved,
    ours: Taxonomy | None,
    state: dict[str, Any] | None,
) -> TargetMerge:
    base = base_of(observed)
    exact = observed.file_sha256 is not None and (state or {}).get("file") == file_key(
        target, observed.file_sha256
    )
    if exact and base is not None:
        theirs: Taxonomy | None = base  # the file is the base version, as written
    elif observed.text is None:
        theirs = None
    else:
        theirs = parse(observed.text, target.format or "json", name)
    checked = ours is None  # the spec's terms passed the structural checks at load
    folds = spec.folds() if ours is None else ()  # a stored version is folded already
    ours = spec.taxonomy if ours is None else ours
    if theirs is None:  # no file (yet, or removed downstream): write the spec's version
        result, changes = merge(None, ours, ours, ours_checked=checked), None
    elif theirs is base and checked:  # the same merge for every target holding its base
        result, changes = spec.memo(
            ("exact", observed.base_digest), lambda: _changes(base, spec, folds, base)
        )
    else:
        result = merge(base, ours, theirs, spec.conflictStrategy, folds, ours_checked=checked)
        changes = None
    text = render(name, result.terms, target.format or "json")
    if changes is None:
        changes = term_changes(theirs or {}, result.terms)
    return TargetMerge(theirs, result, text, changes, exact=result.terms == ours)


def _changes(
    base: Taxonomy, spec: TaxonomySpec, folds: Sequence[Fold], theirs: Taxonomy
) -> tuple[MergeResult, list[TermChange]]:
    """The spec's merge with a file that holds `base`, and the file's term changes."""
    result = merge(base, spec.taxonomy, theirs, spec.conflictStrategy, folds, ours_checked=True)
    return result, term_changes(theirs, result.terms)


def plan_taxonomy(
    name: str, spec: TaxonomySpec, observed: TaxonomyObserved, last_applied: ResourceRecord | None
) -> ResourcePlan:
    """The resource-level verdict: one action per target that needs one."""
    actions: list[Action] = []
    notes: list[Step] = []
    states = last_applied.state if last_applied is not None else {}
    for target, seen in zip(spec.targets, observed.targets, strict=True):
        state = states.get(target.unit)
        steps = plan_target(name, spec, target, seen, state if isinstance(state, dict) else None)
        applying = tuple(s for s in steps if s["op"] != "blocked")
        if applying:
            actions.append(Action(target.unit, applying))
        notes += [s for s in steps if s["op"] == "blocked"]
    return _verdict(spec, actions, notes, last_applied)


def plan_target(
    name: str,
    spec: TaxonomySpec,
    target: TargetSpec,
    observed: TargetObserved,
    state: dict[str, Any] | None = None,
) -> list[Step]:
    """The steps of one target: nothing, blocked notes, or an action's steps."""
    unit = target.unit
    if observed.error:
        return [_blocked(unit, observed.error)]
    if _unchanged(name, spec, target, observed, state):
        return []
    try:
        merged = merge_target(name, spec, target, observed, state=state)
    except DocumentError as error:
        at = f" at {observed.tip[:7]}" if observed.tip else ""
        reason = f"cannot parse {target.path}{at}: {error}; the file is left as it is"
        return [_blocked(unit, reason)]
    if merged.result.unresolved:
        return [
            _blocked(unit, f"conflict in {c.term}: {c}; conflictStrategy fail leaves the file")
            for c in merged.result.unresolved
        ]
    head: dict[str, Any] = {"unit": unit, "from": observed.tip, "base": observed.base_version}
    if merged.text == observed.text:
        if _base_is_spec(name, spec, observed):
            return []
        reason = "the file already matches the spec: record this version as its base"
        return [{"op": "adopt", **head, "reason": reason}]
    write = {"op": "write", **head, "digest": merged.digest, "terms": len(merged.result.terms)}
    write["reason"] = _write_reason(target, observed, merged)
    conflicts = [
        {"op": "conflict", "unit": unit, **c.to_json(), "reason": f"{c.term}: {c}"}
        for c in merged.result.conflicts
    ]
    terms = [] if merged.theirs is None else [c.to_step(unit) for c in merged.changes]
    return [write, *conflicts, *terms]


def _unchanged(
    name: str,
    spec: TaxonomySpec,
    target: TargetSpec,
    observed: TargetObserved,
    state: dict[str, Any] | None,
) -> bool:
    """The target's base is the spec's content and its file is exactly that version as
    reconciler wrote it: the merge would give the same file back (nothing to do), so it is
    not computed. Any other case is merged."""
    sha = observed.file_sha256
    return (
        sha is not None
        and state is not None
        and state.get("file") == file_key(target, sha)
        and observed.base_digest is not None
        and observed.base_digest == spec_content(name, spec).digest
    )


def _base_is_spec(name: str, spec: TaxonomySpec, observed: TargetObserved) -> bool:
    """The target's base version holds the spec's content (compared by digest when the
    store gave one)."""
    if observed.base_digest is not None:
        return observed.base_digest == spec_content(name, spec).digest
    return observed.base is not None and observed.base == document(name, spec.taxonomy)


def _write_reason(target: TargetSpec, observed: TargetObserved, merged: TargetMerge) -> str:
    where = f"{target.path} on {target.branch}"
    count = len(merged.result.terms)
    if observed.tip is None:
        return f"create branch {target.branch} with {where} ({count} terms)"
    if merged.theirs is None:
        return f"create {where} ({count} terms)"
    ops = Counter(_PAST[c.op] for c in merged.changes)
    changed = ", ".join(f"{n} {op}" for op, n in sorted(ops.items())) or "reformat only"
    return f"commit {where}: {changed}"


def _blocked(unit: str, reason: str) -> Step:
    return {"op": "blocked", "unit": unit, "reason": reason}


def _verdict(
    spec: TaxonomySpec,
    actions: list[Action],
    notes: list[Step],
    last_applied: ResourceRecord | None,
) -> ResourcePlan:
    targets = len(spec.targets)
    blocked = len({n["unit"] for n in notes})
    if actions:
        terms = sum(1 for a in actions for s in a.steps if "term" in s and s["op"] != "conflict")
        conflicts = sum(1 for a in actions for s in a.steps if s["op"] == "conflict")
        reason = f"{len(actions)} of {targets} targets to write: {terms} term changes"
        if conflicts:
            reason += f", {conflicts} conflicts resolved (conflictStrategy {spec.conflictStrategy})"
        if blocked:
            reason += f"; {blocked} blocked"
        action: ChangeAction = "create" if last_applied is None else "update"
        return ResourcePlan(action, reason, tuple(actions), tuple(notes))
    if notes:
        return ResourcePlan(
            "blocked", f"{blocked} of {targets} targets blocked", notes=tuple(notes)
        )
    terms = len(spec.taxonomy)
    return ResourcePlan("noop", f"{targets} targets in sync with the spec's {terms} terms")
