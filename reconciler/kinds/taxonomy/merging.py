"""The three-way merge of taxonomies, per term and per field. Pure, and linear in the terms.

    base    the version last applied to a target (None: never applied)
    ours    the spec (after its term merges)
    theirs  the target's file as found now

A change on one side only is taken; the same change on both sides is no conflict; sets
(aliases, related) merge element-wise; a term added on either side is kept. `three_way`
and `merged_set` are that rule for one value; `pulling` decides with them too. Conflicts:
both sides changed a field differently; one side removed a term the other changed; the
merged result has a dangling reference, a parent cycle or an ambiguous alias. The
strategy resolves them: `spec` takes ours, `target` takes theirs, `fail` leaves them
unresolved (the caller blocks the target). With `spec` or `target` the result always
passes `validating.problems`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.kinds.taxonomy.folding import Fold, fold
from reconciler.kinds.taxonomy.terms import (
    SCALAR_FIELDS,
    SET_FIELDS,
    Taxonomy,
    Term,
    document_key,
    plain,
)
from reconciler.kinds.taxonomy.validating import Problem, problems

Strategy = Literal["spec", "target", "fail"]
Side = Literal["ours", "theirs", "conflict"]
# The base of a term both sides added: every field of theirs and ours is then a change.
BLANK = Term(id="", label="")
_SIDES = {"spec": "the spec", "target": "the target"}


def three_way(base: object, ours: object, theirs: object) -> Side:
    """Which side's value a three-way merge keeps: `ours` when theirs did not change it
    (or made the same change), `theirs` when only they changed it, `conflict` when both
    changed it differently. Values are whole terms (None: absent) or one field of them."""
    if ours == theirs or theirs == base:
        return "ours"
    if ours == base:
        return "theirs"
    return "conflict"


def merged_set(
    base: frozenset[str], ours: frozenset[str], theirs: frozenset[str]
) -> frozenset[str]:
    """A set field merged element-wise: what either side added, and what neither removed."""
    return (ours - base) | (theirs - base) | (base & ours & theirs)


@dataclass(frozen=True)
class Conflict:
    """A place where both sides disagree, and how (or whether) it was resolved."""

    term: str
    field: str | None  # a document key; None: the whole term
    kind: str
    detail: str  # one line: what each side did
    resolution: str | None  # "spec" | "target"; None: unresolved
    spec: Any = None
    target: Any = None

    def __str__(self) -> str:
        if self.resolution is None:
            return self.detail
        return f"{self.detail}; {_SIDES[self.resolution]}'s side is taken"

    def to_json(self) -> dict[str, Any]:
        """The conflict as plan steps and history entries show it."""
        data = {"term": self.term, "field": self.field, "kind": self.kind}
        data |= {"spec": plain(self.spec), "target": plain(self.target)}
        return data | {"resolution": self.resolution, "detail": str(self)}


@dataclass(frozen=True)
class MergeResult:
    """The merged terms and every conflict met on the way."""

    terms: Taxonomy
    conflicts: tuple[Conflict, ...] = ()

    @property
    def unresolved(self) -> list[Conflict]:
        """Conflicts left to a person (strategy fail)."""
        return [c for c in self.conflicts if c.resolution is None]


def merge(
    base: Mapping[str, Term] | None,
    ours: Mapping[str, Term],
    theirs: Mapping[str, Term],
    strategy: Strategy = "spec",
    folds: Sequence[Fold] = (),
    ours_checked: bool = False,
) -> MergeResult:
    """Merge `ours` and `theirs`, both descended from `base`; then apply the term merges
    `folds` to the result (references that the target added are rewritten too).
    `ours_checked`: `ours` has no structural problem (a validated spec's terms), so a result
    equal to it needs no repair and is not checked again."""
    base = base or {}
    run = _Merge(ours, theirs, strategy)
    for term_id in sorted(set(base) | set(ours) | set(theirs)):
        merged = run.term(base.get(term_id), ours.get(term_id), theirs.get(term_id))
        if merged is not None:
            run.result[term_id] = merged
    if folds:
        run.result = fold(run.result, folds)
    if not (ours_checked and run.result == ours):
        run.repair()
    return MergeResult(run.result, tuple(run.conflicts))


@dataclass
class _Merge:
    ours: Mapping[str, Term]
    theirs: Mapping[str, Term]
    strategy: Strategy
    result: Taxonomy = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    tried: set[tuple[str, str, str, str]] = field(default_factory=set)

    @property
    def winner(self) -> Mapping[str, Term]:
        """The side the strategy favours (ours under fail: it is only a placeholder then)."""
        return self.theirs if self.strategy == "target" else self.ours

    @property
    def resolution(self) -> str | None:
        """What resolved conflicts are marked with; None under fail."""
        return None if self.strategy == "fail" else self.strategy

    def conflict(
        self,
        term: str,
        key: str | None,
        kind: str,
        detail: str,
        spec: Any = None,
        target: Any = None,
    ) -> None:
        """Record a conflict, resolved by the strategy (or not, under fail)."""
        self.conflicts.append(Conflict(term, key, kind, detail, self.resolution, spec, target))

    # -- per term ----------------------------------------------------------------------------
    def term(self, base: Term | None, ours: Term | None, theirs: Term | None) -> Term | None:
        """One term merged (None: it is gone)."""
        side = three_way(base, ours, theirs)
        if side != "conflict":
            return ours if side == "ours" else theirs
        if ours is None:
            assert theirs is not None
            self.conflict(
                theirs.id, None, "removed-changed", "removed in the spec, changed in the target"
            )
            return theirs if self.strategy == "target" else None
        if theirs is None:
            self.conflict(
                ours.id, None, "changed-removed", "changed in the spec, removed in the target"
            )
            return None if self.strategy == "target" else ours
        return self.fields(base or BLANK, ours, theirs)

    def fields(self, base: Term, ours: Term, theirs: Term) -> Term:
        """A term both sides changed, merged field by field."""
        values: dict[str, Any] = {}
        for name in SCALAR_FIELDS:
            b, o, t = getattr(base, name), getattr(ours, name), getattr(theirs, name)
            side = three_way(b, o, t)
            if side != "conflict":
                values[name] = o if side == "ours" else t
            else:
                key = document_key(name)
                detail = f"{key}: the spec has {o!r}, the target {t!r}"
                self.conflict(ours.id, key, "both-changed", detail, o, t)
                values[name] = t if self.strategy == "target" else o
        for name in SET_FIELDS:
            values[name] = merged_set(
                getattr(base, name), getattr(ours, name), getattr(theirs, name)
            )
        return Term(id=ours.id, **values)

    # -- the merged whole ---------------------------------------------------------------------
    def repair(self) -> None:
        """Resolve structural problems until none is left (or record them, under fail)."""
        while True:
            found = problems(self.result)
            if not found:
                return
            if self.strategy == "fail":
                for problem in found:
                    self.conflict(
                        problem.term, document_key(problem.field), problem.kind, str(problem)
                    )
                return
            shared: dict[str, list[Problem]] = {}
            for problem in found:
                if problem.kind == "duplicate-alias":
                    shared.setdefault(problem.value.casefold(), []).append(problem)
                else:
                    self.fix(problem)
            for alias, group in shared.items():
                self.fix_duplicate_alias(alias, group)

    def fix(self, problem: Problem) -> None:
        """Resolve one structural problem of the result."""
        if problem.kind in ("dangling", "self"):
            self.fix_reference(problem)
        elif problem.kind == "cycle":
            self.fix_cycle(problem)
        else:
            self.fix_alias_label(problem)

    def first_try(self, problem: Problem) -> bool:
        """True the first time a problem is met: the strategy's own fix is tried once, a
        plain removal afterwards (so that repairs always end)."""
        key = (problem.kind, problem.term, problem.field, problem.value)
        if key in self.tried:
            return False
        self.tried.add(key)
        return True

    def fix_reference(self, problem: Problem) -> None:
        """A reference to a missing term: keep the term if the winner has it, else drop it."""
        term, missing, key = self.result[problem.term], problem.value, document_key(problem.field)
        if missing in self.result and problem.kind == "dangling":
            return  # restored by an earlier fix of this round
        if problem.kind == "dangling" and missing in self.winner and self.first_try(problem):
            self.restore(missing)
            detail = f"{key} refers to {missing!r}, removed on one side; {missing!r} is kept"
            self.conflict(term.id, key, "dangling", detail)
            return
        self.result[term.id] = _without_reference(term, problem.field, missing)
        detail = f"{key} refers to {missing!r}, which is not a term; the reference is dropped"
        self.conflict(term.id, key, problem.kind, detail)

    def restore(self, term_id: str) -> None:
        """Bring back a term from the winning side, with the ancestors it needs."""
        node: str | None = term_id
        while node is not None and node not in self.result and node in self.winner:
            self.result[node] = self.winner[node]
            node = self.winner[node].parent

    def fix_cycle(self, problem: Problem) -> None:
        """A parent cycle: the winner's parents for its members, else cut it at the first."""
        ring = problem.others
        changed = False
        if self.first_try(problem):
            for member in ring:
                wanted = self.winner[member].parent if member in self.winner else None
                if member in self.result and wanted != self.result[member].parent:
                    self.result[member] = self.result[member].with_values(parent=wanted)
                    changed = True
        if not changed:
            self.result[ring[0]] = self.result[ring[0]].with_values(parent=None)
        detail = f"parents form a cycle ({' -> '.join((*ring, ring[0]))})"
        self.conflict(ring[0], "parent", "cycle", detail)

    def fix_duplicate_alias(self, alias: str, group: list[Problem]) -> None:
        """One alias on several live terms: the winning side's holder keeps it."""
        holders = sorted({p.term for p in group} | {p.others[0] for p in group})
        keepers = [
            h for h in holders if h in self.winner and alias in _folded(self.winner[h].aliases)
        ]
        keep = min(keepers or holders)
        for holder in holders:
            if holder != keep and holder in self.result:
                term = self.result[holder]
                aliases = frozenset(a for a in term.aliases if a.casefold() != alias)
                self.result[holder] = term.with_values(aliases=aliases)
        shown = ", ".join(map(repr, holders[:5])) + (" ..." if len(holders) > 5 else "")
        detail = f"alias {group[0].value!r} is on {shown}; {keep!r} keeps it"
        self.conflict(keep, "aliases", "duplicate-alias", detail)

    def fix_alias_label(self, problem: Problem) -> None:
        """An alias equal to another term's label: revert the label if the winner's alias
        met the loser's label, else drop the alias."""
        term, alias = self.result[problem.term], problem.value
        if alias not in term.aliases:
            return
        named = problem.others[0]
        other = self.result[named]
        winning = self.winner.get(named)
        if (
            winning is not None
            and winning.label != other.label
            and problem.term in self.winner
            and alias in self.winner[problem.term].aliases
            and self.first_try(problem)
        ):
            self.result[named] = other.with_values(label=winning.label)
            detail = (
                f"alias {alias!r} is the label of {named!r}; "
                f"that label is reverted to {winning.label!r}"
            )
        else:
            self.result[term.id] = term.with_values(aliases=term.aliases - {alias})
            detail = f"alias {alias!r} is the label of {named!r}; the alias is dropped"
        self.conflict(term.id, "aliases", "alias-label", detail)


def _without_reference(term: Term, name: str, missing: str) -> Term:
    if name == "parent":
        return term.with_values(parent=None)
    if name == "related":
        return term.with_values(related=term.related - {missing})
    return term.with_values(replaced_by=None)


def _folded(aliases: Iterable[str]) -> set[str]:
    return {a.casefold() for a in aliases}
