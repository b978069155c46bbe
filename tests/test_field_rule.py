"""One three-way rule and one cycle walker for the taxonomy: the merge and the pull decide
each field alike, and parent and replacedBy cycles are found by the same walk."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.kinds.taxonomy.merging import merge, merged_set, three_way
from reconciler.kinds.taxonomy.pulling import PullReport, taken_fields
from reconciler.kinds.taxonomy.terms import Taxonomy, Term
from reconciler.kinds.taxonomy.validating import rings

# Every reference points at OTHER, present and unchanged on all sides: the merged result
# then has no structural problem, and only the field rule decides.
OTHER = Term("other", "Other")
_SETS = st.frozensets(st.sampled_from(["x", "y", "z"]))
TERMS = st.builds(
    Term,
    id=st.just("t"),
    label=st.sampled_from(["A", "B", "C"]),
    parent=st.sampled_from([None, "other"]),
    aliases=_SETS,
    related=st.frozensets(st.just("other")),
    description=st.sampled_from([None, "d1", "d2"]),
    deprecated=st.booleans(),
    replaced_by=st.sampled_from([None, "other"]),
)
RULE = settings(max_examples=300, deadline=None)


def tax(term: Term) -> Taxonomy:
    return {OTHER.id: OTHER, term.id: term}


@RULE
@given(TERMS, TERMS, TERMS)
def test_a_pull_takes_what_the_merge_keeps_when_the_spec_wins(
    base: Term, ours: Term, theirs: Term
) -> None:
    merged = merge(tax(base), tax(ours), tax(theirs), "spec")
    report = PullReport(Path("specs/taxonomy.yaml"))
    pulled = ours.with_values(**taken_fields(base, ours, theirs, ours, report))
    assert merged.terms == tax(pulled)
    kept = {line.split(":")[0].removeprefix("t.") for line in report.kept}
    assert {c.field for c in merged.conflicts} == kept
    assert all(c.kind == "both-changed" for c in merged.conflicts)


@RULE
@given(TERMS, TERMS, TERMS)
def test_the_merge_takes_the_side_the_rule_names(base: Term, ours: Term, theirs: Term) -> None:
    for strategy, winner in (("spec", ours), ("target", theirs)):
        result = merge(tax(base), tax(ours), tax(theirs), strategy).terms["t"]
        for name in ("label", "parent", "description", "deprecated", "replaced_by"):
            side = three_way(getattr(base, name), getattr(ours, name), getattr(theirs, name))
            expected = {"ours": ours, "theirs": theirs, "conflict": winner}[side]
            assert getattr(result, name) == getattr(expected, name)


@given(_SETS, _SETS, _SETS)
def test_a_merged_set_is_ours_with_their_additions_and_without_their_removals(
    base: frozenset[str], ours: frozenset[str], theirs: frozenset[str]
) -> None:
    assert merged_set(base, ours, theirs) == (ours | (theirs - base)) - (base - theirs)
    assert merged_set(base, ours, theirs) == merged_set(base, theirs, ours)


def test_the_rule_for_one_value() -> None:
    assert three_way("a", "a", "a") == "ours"
    assert three_way("a", "b", "a") == "ours"  # only ours changed
    assert three_way("a", "b", "b") == "ours"  # the same change on both sides
    assert three_way("a", "a", "b") == "theirs"
    assert three_way("a", "b", "c") == "conflict"
    assert three_way(None, None, "b") == "theirs"  # added on their side only


EDGES = st.lists(st.sampled_from([None, "gone", *map(str, range(8))]), min_size=8, max_size=8)


def _on_a_cycle(edges: dict[str, str | None], node: str) -> bool:
    seen, step = 0, edges.get(node)
    while step is not None and step in edges and seen <= len(edges):
        if step == node:
            return True
        step, seen = edges[step], seen + 1
    return False


@settings(max_examples=300, deadline=None)
@given(EDGES)
def test_parent_and_replaced_by_cycles_are_the_same_walk(targets: list[str | None]) -> None:
    edges = {str(n): target for n, target in enumerate(targets)}
    by_parent = {i: Term(i, i, parent=e) for i, e in edges.items()}
    by_replacement = {i: Term(i, i, replaced_by=e) for i, e in edges.items()}
    found = rings(by_parent, lambda term: term.parent)
    assert found == rings(by_replacement, lambda term: term.replaced_by)
    members = [node for ring in found for node in ring]
    assert sorted(members) == sorted(n for n in edges if _on_a_cycle(edges, n))
    for ring in found:  # each ring in walk order: every member points at the next
        assert [edges[n] for n in ring] == [*ring[1:], ring[0]]
