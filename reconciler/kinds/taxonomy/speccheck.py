"""Checks of a Taxonomy spec across its terms, merges and targets.

Every problem becomes one pydantic error at its own location (`terms[3].parent`), so the
loader reports all of them at once, each with its file and line.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic_core import InitErrorDetails, PydanticCustomError

from reconciler.kinds.taxonomy.terms import Term
from reconciler.kinds.taxonomy.validating import Problem, problems, rings

if TYPE_CHECKING:  # types only: model imports this module to validate a spec
    from reconciler.kinds.taxonomy.model import TaxonomySpec
    from reconciler.kinds.taxonomy.terms import Taxonomy

Loc = tuple[str | int, ...]
Found = list[tuple[Loc, str, Any]]


class WrittenTerm(Protocol):
    """A term as written: in the spec (`TermSpec`) or in a terms file (`FileTerm`)."""

    @property
    def id(self) -> str: ...
    @property
    def parent(self) -> str | None: ...
    @property
    def aliases(self) -> list[str]: ...
    @property
    def related(self) -> list[str]: ...
    @property
    def replacedBy(self) -> str | None: ...


Written = Callable[[int], WrittenTerm]  # term `index` as written, to place a problem


def spec_errors(spec: TaxonomySpec) -> list[InitErrorDetails]:
    """Every problem of `spec` (its terms written in it) as pydantic error details."""
    found = spec_problems(spec, spec.terms.__getitem__)
    return [error_details(loc, message, value) for loc, message, value in found]


def spec_problems(spec: TaxonomySpec, written: Written) -> Found:
    """Every problem of `spec`: (location, message, value). The checks run on the merge's
    terms (`spec.term_list`); `written` gives a term as written when a problem needs its
    place in one of the term's lists."""
    terms = spec.term_list
    found: Found = []
    found += _ids(terms)
    found += _merges(spec, terms)
    found += _references(spec, terms, written)
    found += _targets(spec)
    if not found:  # the structure is only meaningful once every reference resolves
        found += _structure(spec, terms, written)
    return found


def error_details(loc: Loc, message: str, value: Any) -> InitErrorDetails:
    """One problem as a pydantic error at `loc`."""
    error = PydanticCustomError("taxonomy", "{message}", {"message": message})
    return InitErrorDetails(type=error, loc=loc, input=value)


def _repeats(keys: Iterable[Hashable]) -> Iterator[tuple[int, int]]:
    """(index, index of the first) for every key met before."""
    first: dict[Hashable, int] = {}
    for index, key in enumerate(keys):
        seen = first.setdefault(key, index)
        if seen != index:
            yield index, seen


def _ids(terms: Sequence[Term]) -> Found:
    found: Found = []
    for index, seen in _repeats(term.id for term in terms):
        term_id = terms[index].id
        message = f"duplicate term id {term_id!r} (first at terms[{seen}])"
        found.append((("terms", index, "id"), message, term_id))
    return found


def _merges(spec: TaxonomySpec, terms: Sequence[Term]) -> Found:
    ids = {t.id for t in terms}
    sources = {m.from_: i for i, m in reversed(list(enumerate(spec.merges)))}
    found: Found = []
    for index, item in enumerate(spec.merges):
        if sources[item.from_] != index:
            message = f"{item.from_!r} is already merged (merges[{sources[item.from_]}])"
            found.append((("merges", index, "from"), message, item.from_))
        if item.into == item.from_:
            found.append(
                (("merges", index, "into"), "a term cannot be merged into itself", item.into)
            )
        elif item.into in sources:
            other = spec.merges[sources[item.into]].into
            message = (
                f"{item.into!r} is itself merged into {other!r}; merge into {other!r} directly"
            )
            found.append((("merges", index, "into"), message, item.into))
        elif item.into not in ids:
            found.append((("merges", index, "into"), f"unknown term {item.into!r}", item.into))
    return found


def _references(spec: TaxonomySpec, terms: Sequence[Term], written: Written) -> Found:
    merged = {m.from_ for m in spec.merges}
    known = {t.id for t in terms} | merged
    found: Found = []
    for index, term in enumerate(terms):
        parent, related, replaced_by = term.parent, term.related, term.replaced_by
        if (
            (not parent or (parent in known and parent != term.id))
            and (not related or (related <= known and term.id not in related))
            and (not replaced_by or (replaced_by in known and replaced_by != term.id))
        ):
            continue  # every reference resolves (most terms): nothing to report
        for loc, value in _term_references(written(index)):
            where: Loc = ("terms", index, *loc)
            if value == term.id:
                found.append((where, "a term cannot refer to itself", value))
            elif value not in known:
                found.append((where, f"unknown term {value!r}", value))
    return found


def _term_references(term: WrittenTerm) -> list[tuple[Loc, str]]:
    found: list[tuple[Loc, str]] = []
    if term.parent:
        found.append((("parent",), term.parent))
    found += [(("related", i), other) for i, other in enumerate(term.related)]
    if term.replacedBy:
        found.append((("replacedBy",), term.replacedBy))
    return found


def _targets(spec: TaxonomySpec) -> Found:
    found: Found = []
    for index, seen in _repeats((t.repo, t.branch, t.path) for t in spec.targets):
        message = f"the same file as targets[{seen}]"
        found.append((("targets", index, "path"), message, spec.targets[index].path))
    return found


def _structure(spec: TaxonomySpec, terms: Sequence[Term], written: Written) -> Found:
    """Cycles and alias clashes of the terms after the term merges."""
    folded = spec.taxonomy  # the terms after the merges, kept for planning
    index = {t.id: i for i, t in enumerate(terms)}
    into = {m.into: i for i, m in enumerate(spec.merges)}
    found = [_locate(p, spec, written, index, into) for p in problems(folded)]
    return found + _replacement_cycles(folded, index)


def _replacement_cycles(folded: Taxonomy, index: dict[str, int]) -> Found:
    """`replacedBy` chains that come back to where they started (a -> b -> a): a reader
    following them would never reach a live term. One problem per cycle, on its first
    term in the spec."""
    found: Found = []
    replaced = {i: t for i, t in folded.items() if t.replaced_by}  # only these can loop
    for ring in rings(replaced, lambda term: term.replaced_by):
        first = min(ring, key=lambda t: index.get(t, len(index)))
        if first in index:
            ring = ring[ring.index(first) :] + ring[: ring.index(first)]
            message = "replacedBy cycle: " + " -> ".join([*ring, first])
            found.append((("terms", index[first], "replacedBy"), message, first))
    return found


def _locate(
    problem: Problem,
    spec: TaxonomySpec,
    written: Written,
    index: dict[str, int],
    into: dict[str, int],
) -> tuple[Loc, str, Any]:
    """The spec location of a problem found after folding."""
    message = str(problem)
    position = index.get(problem.term)
    if position is None:
        return ("terms",), message, problem.term
    term = written(position)
    if problem.field != "aliases":
        return ("terms", position, problem.field), message, problem.value
    if problem.value in term.aliases:
        return (
            ("terms", position, "aliases", term.aliases.index(problem.value)),
            message,
            problem.value,
        )
    if problem.term in into:  # the alias came with a term merge
        merge = into[problem.term]
        source = spec.merges[merge].from_
        return ("merges", merge, "from"), f"merging {source!r}: {message}", problem.value
    return ("terms", position, "aliases"), message, problem.value
