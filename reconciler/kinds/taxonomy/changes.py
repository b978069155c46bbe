"""What changed between two versions of a taxonomy, term by term.

A keyed diff (dict by id) finds the changed terms in linear time; DeepDiff then describes
only those (BASELINES: DeepDiff over whole taxonomies is a hundred times slower).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from reconciler.kinds.taxonomy.terms import Taxonomy, Term, document_key, field_names, plain

CATEGORIES = ("added", "removed", "relabelled", "moved", "merged", "edited")


@dataclass(frozen=True)
class TermChange:
    """One term's change: add, remove, update, or merge (it became a tombstone)."""

    op: str
    term: str
    fields: dict[str, list[Any]] = field(default_factory=dict)  # key -> [before, after]
    label: str = ""
    into: str | None = None

    def reason(self) -> str:
        """One line for a plan step."""
        if self.op == "add":
            return f"add {self.term} ({self.label!r})"
        if self.op == "remove":
            return f"remove {self.term} ({self.label!r})"
        if self.op == "merge":
            return f"merge {self.term} into {self.into}: deprecated, replacedBy {self.into}"
        return f"update {self.term}: " + "; ".join(
            _field_change(key, before, after) for key, (before, after) in self.fields.items()
        )

    def to_step(self, unit: str) -> dict[str, Any]:
        """The change as a plan step of `unit`."""
        step: dict[str, Any] = {"op": self.op, "unit": unit, "term": self.term}
        if self.fields:
            step["fields"] = self.fields
        if self.into:
            step["into"] = self.into
        return step | {"reason": self.reason()}


def term_changes(before: Taxonomy, after: Taxonomy) -> list[TermChange]:
    """The changes that turn `before` into `after`, by term id."""
    found = []
    for term_id in sorted(before.keys() | after.keys()):
        old, new = before.get(term_id), after.get(term_id)
        if old == new:
            continue
        if old is None:
            assert new is not None
            found.append(TermChange("add", term_id, label=new.label))
        elif new is None:
            found.append(TermChange("remove", term_id, label=old.label))
        elif _merged(old, new):
            found.append(TermChange("merge", term_id, label=new.label, into=new.replaced_by))
        else:
            found.append(TermChange("update", term_id, _fields(old, new), new.label))
    return found


def _merged(old: Term, new: Term) -> bool:
    return new.deprecated and new.replaced_by is not None and not old.deprecated


def _fields(old: Term, new: Term) -> dict[str, list[Any]]:
    changed = {}
    for name in field_names():
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            changed[document_key(name)] = [plain(before), plain(after)]
    return changed


def _field_change(key: str, before: Any, after: Any) -> str:
    if isinstance(before, list) and isinstance(after, list):
        plus = [f"+{v}" for v in after if v not in before]
        minus = [f"-{v}" for v in before if v not in after]
        return f"{key} {' '.join(plus + minus)}"
    if before in (None, False):
        return f"{key} set to {after!r}"
    if after in (None, False):
        return f"{key} {before!r} removed"
    return f"{key} {before!r} -> {after!r}"


def describe(
    before: Taxonomy, after: Taxonomy, changed: list[str] | None = None
) -> dict[str, list[str]]:
    """Term ids per category (added, removed, relabelled, moved, merged, edited), as
    DeepDiff describes the changed terms (`changed`: their ids, when already known)."""
    if changed is None:
        changed = [i for i in before.keys() | after.keys() if before.get(i) != after.get(i)]
    if not changed:
        return {}
    from deepdiff import DeepDiff  # slow to import; only needed when something changed

    old = {i: before[i].to_dict() for i in changed if i in before}
    new = {i: after[i].to_dict() for i in changed if i in after}
    found: dict[str, set[str]] = defaultdict(set)
    difference = DeepDiff(old, new, view="tree", threshold_to_diff_deeper=0)
    for report, levels in difference.items():
        for level in levels:
            path = level.path(output_format="list")
            found[_category(report, path, new)].add(str(path[0]))
    merged = found.get("merged", set())
    return {
        c: sorted(found[c] if c == "merged" else found[c] - merged)
        for c in CATEGORIES
        if found.get(c) and (c == "merged" or found[c] - merged)
    }


def _category(report: str, path: list[Any], new: dict[str, Any]) -> str:
    if len(path) == 1:
        whole = {"dictionary_item_added": "added", "dictionary_item_removed": "removed"}
        return whole.get(report, "edited")
    key = path[1]
    if key in ("deprecated", "replacedBy") and new.get(path[0], {}).get("replacedBy"):
        return "merged"
    return {"label": "relabelled", "parent": "moved"}.get(str(key), "edited")


def counts(categories: dict[str, list[str]]) -> str:
    """`2 added, 1 relabelled` (or `no term changed`)."""
    parts = [f"{len(ids)} {name}" for name, ids in categories.items() if ids]
    return ", ".join(parts) or "no term changed"
