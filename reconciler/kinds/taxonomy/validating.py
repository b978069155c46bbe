"""Structural checks of a taxonomy: references resolve, parents form a forest, aliases and
labels are unambiguous among live terms. Pure and linear in the number of terms.

The same checks validate a spec (after its term merges) and every merged result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.kinds.taxonomy.terms import Taxonomy, Term, document_key


@dataclass(frozen=True)
class Problem:
    """One structural problem, attributed to a term and one of its fields."""

    kind: str  # dangling | self | cycle | duplicate-alias | alias-label
    term: str
    field: str  # a Term field name
    value: str  # the id or alias at fault
    others: tuple[str, ...] = ()  # cycle members, or the other terms involved

    def __str__(self) -> str:
        key = document_key(self.field)
        if self.kind == "dangling":
            return f"{key} {self.value!r} is not a term"
        if self.kind == "self":
            return f"{key} refers to the term itself"
        if self.kind == "cycle":
            return "parent cycle: " + " -> ".join((*self.others, self.others[0]))
        if self.kind == "duplicate-alias":
            return f"alias {self.value!r} is also an alias of {_names(self.others)}"
        return f"alias {self.value!r} is the label of {_names(self.others)}"


def _names(ids: tuple[str, ...]) -> str:
    return ", ".join(repr(i) for i in ids)


def problems(terms: Taxonomy) -> list[Problem]:
    """Every structural problem of `terms`, in a stable order."""
    return [*references(terms), *cycles(terms), *alias_clashes(terms)]


def references(terms: Taxonomy) -> list[Problem]:
    """References to missing terms, and terms referring to themselves."""
    found = []
    for term in terms.values():
        parent, related, replaced_by = term.parent, term.related, term.replaced_by
        if parent is not None and parent not in terms:
            found.append(Problem("dangling", term.id, "parent", parent))
        if (related and not related <= terms.keys()) or term.id in related:
            for other in sorted(related):
                if other == term.id:
                    found.append(Problem("self", term.id, "related", other))
                elif other not in terms:
                    found.append(Problem("dangling", term.id, "related", other))
        if replaced_by is not None and (replaced_by == term.id or replaced_by not in terms):
            kind = "self" if replaced_by == term.id else "dangling"
            found.append(Problem(kind, term.id, "replaced_by", replaced_by))
    return found


def cycles(terms: Taxonomy) -> list[Problem]:
    """One problem per parent cycle, on its smallest id (a term its own parent included)."""
    found = []
    for members in rings(terms, lambda term: term.parent):
        first = members.index(min(members))
        ring = tuple(members[first:] + members[:first])
        found.append(Problem("cycle", ring[0], "parent", terms[ring[0]].parent or "", ring))
    return found


def rings(terms: Taxonomy, edge: Callable[[Term], str | None]) -> list[list[str]]:
    """The cycles of the graph in which every term points at `edge(term)` (its parent, its
    replacedBy), each as its members in the order walked, from where the walk entered it.
    Linear: every term is walked once."""
    state: dict[str, int] = {}  # 1: on the current walk, 2: walked before
    found = []
    for start in terms:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node in terms and node not in state:
            state[node] = 1
            walk.append(node)
            node = edge(terms[node])
        if node is not None and state.get(node) == 1:
            found.append(walk[walk.index(node) :])
        for visited in walk:
            state[visited] = 2
    return found


def alias_clashes(terms: Taxonomy) -> list[Problem]:
    """Aliases shared by live terms, and aliases equal to another live term's label
    (case-insensitive); reported on every holder but the first."""
    holders: dict[str, list[str]] = defaultdict(list)
    live = [term for term in terms.values() if not term.deprecated]
    for term in live:
        if term.aliases:
            for alias in {a.casefold() for a in term.aliases}:
                holders[alias].append(term.id)
    labels: dict[str, list[str]] = defaultdict(list)
    for term in live:
        key = term.label.casefold()
        if key in holders:
            labels[key].append(term.id)
    shared = {key for key, ids in holders.items() if len(ids) > 1}
    named = {key for key in holders.keys() & labels.keys() if holders[key] != labels[key]}
    suspects = {i for key in shared | named for i in holders[key]}
    if not suspects:
        return []
    position = {term_id: index for index, term_id in enumerate(terms)}
    found = []
    for term_id in sorted(suspects, key=position.__getitem__):
        for alias in sorted(terms[term_id].aliases):
            key = alias.casefold()
            sharing = holders[key]
            if len(sharing) > 1 and sharing[0] != term_id:  # name the first holder only
                first = (sharing[0],)
                found.append(Problem("duplicate-alias", term_id, "aliases", alias, first))
            label_of = next((i for i in labels.get(key, ()) if i != term_id), None)
            if label_of is not None:
                found.append(Problem("alias-label", term_id, "aliases", alias, (label_of,)))
    return found
