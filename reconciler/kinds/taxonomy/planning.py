"""Pure planning of a Taxonomy: per target, merge (base, spec, file) and show the term-level
changes the file would get. No I/O here; apply re-runs `merge_target` on the same inputs.

Per target, one action whose first step is `write` (commit the merged file) or `adopt`
(the file already matches: record the spec's version as the target's base), followed by
the resolved conflicts and one step per changed term (add, remove, update, merge).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

from reconciler.kinds.base import Action, ChangeAction, ResourcePlan, Step
from reconciler.kinds.taxonomy.changes import TermChange, term_changes
from reconciler.kinds.taxonomy.documents import DocumentError, document, from_content, parse, render
from reconciler.kinds.taxonomy.merging import MergeResult, merge
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observed import TargetObserved, TaxonomyObserved
from reconciler.kinds.taxonomy.terms import Taxonomy
from reconciler.store import ResourceRecord

_PAST = {"add": "added", "remove": "removed", "update": "updated", "merge": "merged"}


@dataclass(frozen=True)
class TargetMerge:
    """The merge of one target: its current terms, the result, and the file to write."""

    theirs: Taxonomy | None
    result: MergeResult
    text: str
    changes: list[TermChange]

    @property
    def digest(self) -> str:
        """sha256 of the file to write (a saved plan's apply must produce the same)."""
        return hashlib.sha256(self.text.encode()).hexdigest()


def merge_target(
    name: str,
    spec: TaxonomySpec,
    target: TargetSpec,
    observed: TargetObserved,
    ours: Taxonomy | None = None,
) -> TargetMerge:
    """Merge the target's file with `ours` (default: the spec; a rollback passes a stored
    version) from its base; raises DocumentError when the file is not a taxonomy document."""
    theirs = None if observed.text is None else parse(observed.text, target.format or "json", name)
    base = from_content(observed.base) if observed.base is not None else None
    folds = spec.folds() if ours is None else ()  # a stored version is folded already
    ours = spec.taxonomy if ours is None else ours
    if theirs is None:  # no file (yet, or removed downstream): write the spec's version
        result = merge(None, ours, ours)
    else:
        result = merge(base, ours, theirs, spec.conflictStrategy, folds)
    text = render(name, result.terms, target.format or "json")
    return TargetMerge(theirs, result, text, term_changes(theirs or {}, result.terms))


def plan_taxonomy(
    name: str, spec: TaxonomySpec, observed: TaxonomyObserved, last_applied: ResourceRecord | None
) -> ResourcePlan:
    """The resource-level verdict: one action per target that needs one."""
    actions: list[Action] = []
    notes: list[Step] = []
    for target, seen in zip(spec.targets, observed.targets, strict=True):
        steps = plan_target(name, spec, target, seen)
        applying = tuple(s for s in steps if s["op"] != "blocked")
        if applying:
            actions.append(Action(target.unit, applying))
        notes += [s for s in steps if s["op"] == "blocked"]
    return _verdict(spec, actions, notes, last_applied)


def plan_target(
    name: str, spec: TaxonomySpec, target: TargetSpec, observed: TargetObserved
) -> list[Step]:
    """The steps of one target: nothing, blocked notes, or an action's steps."""
    unit = target.unit
    if observed.error:
        return [_blocked(unit, observed.error)]
    try:
        merged = merge_target(name, spec, target, observed)
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
        if observed.base is not None and observed.base == document(name, spec.taxonomy):
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
