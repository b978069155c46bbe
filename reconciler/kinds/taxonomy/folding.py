"""Term merges (`merges: [{from, into}]`): fold OLD into NEW, rewriting every reference.

OLD's label and aliases become NEW's aliases, OLD's related terms join NEW's, every
parent / related / replacedBy reference to OLD points at NEW (so OLD's children move under
NEW), and OLD stays as a deprecated tombstone `replacedBy: NEW` unless keepTombstone is
false. Folding is idempotent: a tombstone that already points at NEW is not folded again,
so an alias someone removed downstream does not come back on every apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from reconciler.kinds.taxonomy.terms import Taxonomy, Term


@dataclass(frozen=True)
class Fold:
    """One term merge."""

    source: str
    into: str
    keep_tombstone: bool = True


def fold(terms: Taxonomy, folds: Sequence[Fold]) -> Taxonomy:
    """`terms` with every fold applied (a new dict; `terms` is not changed)."""
    if not folds:
        return dict(terms)
    mapping = {f.source: f.into for f in folds}
    result = {term_id: rewrite(term, mapping, terms) for term_id, term in terms.items()}
    for item in folds:
        old = result.get(item.source)
        if old is None:
            continue
        new = result.get(item.into)
        if new is not None and not _folded(old, item.into):
            result[item.into] = _absorb(new, old)
        if item.keep_tombstone:
            result[item.source] = tombstone(old, item.into)
        else:
            del result[item.source]
    return result


def rewrite(term: Term, mapping: Mapping[str, str], terms: Mapping[str, Term]) -> Term:
    """`term` with references to folded terms pointing at what they were folded into."""
    parent = term.parent
    if parent is not None and parent in mapping:
        old, parent = parent, mapping[parent]
        if parent == term.id:  # NEW was a child of OLD: it takes OLD's place
            above = terms[old].parent if old in terms else None
            parent = mapping.get(above, above) if above else None
            parent = None if parent == term.id else parent
    related = term.related
    if any(r in mapping for r in related):
        related = frozenset(mapping.get(r, r) for r in related) - {term.id}
    replaced_by = mapping.get(term.replaced_by, term.replaced_by) if term.replaced_by else None
    replaced_by = None if replaced_by == term.id else replaced_by
    if parent == term.parent and related is term.related and replaced_by == term.replaced_by:
        return term
    return term.with_values(parent=parent, related=related, replaced_by=replaced_by)


def tombstone(old: Term, into: str) -> Term:
    """What remains of a folded term: its id, label and description, deprecated."""
    return Term(
        id=old.id,
        label=old.label,
        description=old.description,
        deprecated=True,
        replaced_by=into,
    )


def _folded(old: Term, into: str) -> bool:
    return old.deprecated and old.replaced_by == into and not old.aliases


def _absorb(new: Term, old: Term) -> Term:
    own = new.label.casefold()
    aliases = {a for a in new.aliases | old.aliases | {old.label} if a.casefold() != own}
    related = (new.related | old.related) - {new.id, old.id}
    return new.with_values(aliases=frozenset(aliases), related=frozenset(related))
