"""The taxonomy three-way merge, term merges and structural checks: examples and properties."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.kinds.taxonomy.folding import Fold, fold
from reconciler.kinds.taxonomy.merging import merge
from reconciler.kinds.taxonomy.terms import Taxonomy, Term
from reconciler.kinds.taxonomy.validating import problems

IDS = [f"t{n}" for n in range(12)]
LABELS = [f"Label {n}" for n in range(6)]
ALIASES = [f"alias{n}" for n in range(8)]


def tax(*terms: Term) -> Taxonomy:
    return {t.id: t for t in terms}


def term(term_id: str, label: str | None = None, **values: object) -> Term:
    for name in ("aliases", "related"):
        if name in values:
            values[name] = frozenset(values[name])  # type: ignore[arg-type]
    return Term(term_id, label or term_id.upper(), **values)  # type: ignore[arg-type]


BASE = tax(
    term("infra", "Infrastructure", aliases={"ops"}),
    term("infra.ci", "CI", parent="infra"),
    term("infra.deploy", "Deployment", parent="infra"),
)


# -- examples ------------------------------------------------------------------------------


def test_edits_on_different_fields_and_terms_are_all_kept() -> None:
    ours = BASE | {"infra.ci": BASE["infra.ci"].with_values(label="CI/CD")}
    theirs = BASE | {
        "infra.ci": BASE["infra.ci"].with_values(description="Pipelines"),
        "infra.docs": term("infra.docs", "Docs", parent="infra"),
    }
    result = merge(BASE, ours, theirs)
    assert result.conflicts == ()
    assert result.terms["infra.ci"] == term(
        "infra.ci", "CI/CD", parent="infra", description="Pipelines"
    )
    assert "infra.docs" in result.terms


def test_sets_merge_element_wise() -> None:
    ours = BASE | {"infra": BASE["infra"].with_values(aliases=frozenset({"ops", "platform"}))}
    theirs = BASE | {"infra": BASE["infra"].with_values(aliases=frozenset({"operations"}))}
    result = merge(BASE, ours, theirs)
    assert result.terms["infra"].aliases == {"platform", "operations"}  # ops removed downstream
    assert result.conflicts == ()


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    changed = BASE | {"infra.ci": BASE["infra.ci"].with_values(label="CI/CD")}
    assert merge(BASE, changed, dict(changed)).conflicts == ()


def test_a_field_changed_differently_is_resolved_by_the_strategy() -> None:
    ours = BASE | {"infra.ci": BASE["infra.ci"].with_values(label="CI/CD")}
    theirs = BASE | {"infra.ci": BASE["infra.ci"].with_values(label="Continuous Integration")}
    for strategy, label in (("spec", "CI/CD"), ("target", "Continuous Integration")):
        result = merge(BASE, ours, theirs, strategy)  # type: ignore[arg-type]
        (conflict,) = result.conflicts
        assert result.terms["infra.ci"].label == label
        assert (conflict.term, conflict.field, conflict.kind) == (
            "infra.ci",
            "label",
            "both-changed",
        )
        assert conflict.resolution == strategy and not result.unresolved
        assert "the spec has 'CI/CD', the target 'Continuous Integration'" in str(conflict)
    failed = merge(BASE, ours, theirs, "fail")
    assert [c.resolution for c in failed.unresolved] == [None]


def test_a_term_removed_on_one_side_and_changed_on_the_other_is_a_conflict() -> None:
    ours = {k: v for k, v in BASE.items() if k != "infra.deploy"}
    theirs = BASE | {"infra.deploy": BASE["infra.deploy"].with_values(label="Shipping")}
    assert "infra.deploy" not in merge(BASE, ours, theirs, "spec").terms
    assert merge(BASE, ours, theirs, "target").terms["infra.deploy"].label == "Shipping"
    (conflict,) = merge(BASE, ours, theirs, "fail").unresolved
    assert conflict.kind == "removed-changed"
    (reverse,) = merge(BASE, theirs, ours, "spec").conflicts
    assert reverse.kind == "changed-removed"


def test_a_child_added_under_a_term_the_other_side_removed() -> None:
    ours = {k: v for k, v in BASE.items() if k != "infra.deploy"}
    theirs = BASE | {"infra.deploy.k8s": term("infra.deploy.k8s", "K8s", parent="infra.deploy")}
    by_spec = merge(BASE, ours, theirs, "spec")  # the spec removed the parent: child moves up
    assert by_spec.terms["infra.deploy.k8s"].parent is None
    assert "infra.deploy" not in by_spec.terms
    assert [c.kind for c in by_spec.conflicts] == ["dangling"]
    by_target = merge(BASE, ours, theirs, "target")  # the target still has it: it stays
    assert by_target.terms["infra.deploy"] == BASE["infra.deploy"]
    assert not problems(by_target.terms)
    assert [c.kind for c in merge(BASE, ours, theirs, "fail").unresolved] == ["dangling"]


def test_parents_changed_into_a_cycle_are_repaired() -> None:
    ours = BASE | {"infra.ci": BASE["infra.ci"].with_values(parent="infra.deploy")}
    theirs = BASE | {"infra.deploy": BASE["infra.deploy"].with_values(parent="infra.ci")}
    by_spec = merge(BASE, ours, theirs, "spec")
    assert not problems(by_spec.terms)
    assert [c.kind for c in by_spec.conflicts] == ["cycle"]
    assert "infra.ci -> infra.deploy -> infra.ci" in str(by_spec.conflicts[0])
    assert by_spec.terms["infra.ci"].parent == "infra.deploy"  # the spec's edge stays
    assert by_spec.terms["infra.deploy"].parent == "infra"
    by_target = merge(BASE, ours, theirs, "target")
    assert by_target.terms["infra.ci"].parent == "infra"
    assert by_target.terms["infra.deploy"].parent == "infra.ci"
    assert [c.kind for c in merge(BASE, ours, theirs, "fail").unresolved] == ["cycle"]


def test_an_alias_added_on_both_sides_to_different_terms() -> None:
    ours = BASE | {"infra.ci": BASE["infra.ci"].with_values(aliases=frozenset({"pipelines"}))}
    theirs = BASE | {
        "infra.deploy": BASE["infra.deploy"].with_values(aliases=frozenset({"Pipelines"}))
    }
    by_spec = merge(BASE, ours, theirs, "spec")
    assert by_spec.terms["infra.ci"].aliases == {"pipelines"}
    assert by_spec.terms["infra.deploy"].aliases == frozenset()
    by_target = merge(BASE, ours, theirs, "target")
    assert by_target.terms["infra.deploy"].aliases == {"Pipelines"}
    assert by_target.terms["infra.ci"].aliases == frozenset()
    assert not problems(by_spec.terms) and not problems(by_target.terms)


def test_an_alias_that_became_another_terms_label() -> None:
    theirs = BASE | {"infra.ci": BASE["infra.ci"].with_values(aliases=frozenset({"deploy"}))}
    ours = BASE | {"infra.deploy": BASE["infra.deploy"].with_values(label="Deploy")}
    by_spec = merge(BASE, ours, theirs, "spec")
    assert by_spec.terms["infra.deploy"].label == "Deploy"
    assert by_spec.terms["infra.ci"].aliases == frozenset()
    by_target = merge(BASE, ours, theirs, "target")
    assert by_target.terms["infra.deploy"].label == "Deployment"
    assert by_target.terms["infra.ci"].aliases == {"deploy"}


def test_without_a_base_both_sides_count_as_additions() -> None:
    ours = tax(term("a", "A", aliases={"x"}))
    theirs = tax(term("a", "A", aliases={"y"}), term("b", "B"))
    result = merge(None, ours, theirs)
    assert result.terms == tax(term("a", "A", aliases={"x", "y"}), term("b", "B"))
    assert result.conflicts == ()


# -- term merges -----------------------------------------------------------------------------


def test_fold_moves_label_aliases_children_and_references() -> None:
    terms = tax(
        term("infra", "Infrastructure", aliases={"ops"}),
        term("devops", "DevOps", aliases={"sre"}, related={"docs"}),
        term("devops.ci", "CI", parent="devops"),
        term("docs", "Docs", related={"devops"}),
    )
    folded = fold(terms, [Fold("devops", "infra")])
    assert folded["infra"].aliases == {"ops", "DevOps", "sre"}
    assert folded["infra"].related == {"docs"}
    assert folded["devops.ci"].parent == "infra"
    assert folded["docs"].related == {"infra"}
    assert folded["devops"] == Term("devops", "DevOps", deprecated=True, replaced_by="infra")
    assert not problems(folded)
    assert fold(folded, [Fold("devops", "infra")]) == folded  # idempotent
    dropped = fold(terms, [Fold("devops", "infra", keep_tombstone=False)])
    assert "devops" not in dropped and dropped["devops.ci"].parent == "infra"


def test_a_fold_rewrites_references_the_target_added_after_the_merge() -> None:
    spec = fold(tax(term("infra", "Infra"), term("devops", "DevOps")), [Fold("devops", "infra")])
    base = dict(spec)
    theirs = base | {"legacy": term("legacy", "Legacy", parent="devops", related={"devops"})}
    result = merge(base, spec, theirs, "spec", [Fold("devops", "infra")])
    assert result.terms["legacy"].parent == "infra"
    assert result.terms["legacy"].related == {"infra"}
    assert result.conflicts == ()


def test_problems_name_what_is_wrong() -> None:
    bad = tax(
        term("a", "A", parent="b", aliases={"same"}),
        term("b", "B", parent="a", related={"missing"}),
        term("c", "C", aliases={"Same", "b"}),
    )
    messages = sorted(str(p) for p in problems(bad))
    assert messages == [
        "alias 'Same' is also an alias of 'a'",
        "alias 'b' is the label of 'b'",
        "parent cycle: a -> b -> a",
        "related 'missing' is not a term",
    ]


# -- properties ------------------------------------------------------------------------------


# One draw per taxonomy of plain numbers, turned into terms by ordinary code: much faster
# than a draw per field.
_SHAPE = st.tuples(
    st.integers(0, 23),  # parent choice
    st.integers(0, len(LABELS) + 1),  # label
    st.sets(st.integers(0, len(ALIASES) - 1), max_size=2),  # aliases
    st.sets(st.integers(0, len(IDS) - 1), max_size=2),  # related
    st.booleans(),  # description
    st.booleans(),  # deprecated
    st.integers(0, 23),  # replacedBy choice
)
_SHAPES = st.tuples(st.permutations(IDS), st.lists(_SHAPE, max_size=8))


@st.composite
def valid_taxonomies(draw: st.DrawFn) -> Taxonomy:
    """Parents point at earlier ids (no cycle), aliases are unique and never labels."""
    order, shapes = draw(_SHAPES)
    chosen = order[: len(shapes)]
    used: set[str] = set()
    terms: Taxonomy = {}
    for index, (parent, label, aliases, related, text, deprecated, _) in enumerate(shapes):
        term_id = chosen[index]
        names = {ALIASES[a] for a in aliases} - used
        used |= names
        terms[term_id] = Term(
            term_id,
            LABELS[label % len(LABELS)],
            chosen[parent % index] if index and parent < 12 else None,
            frozenset(names),
            frozenset(chosen[r % len(chosen)] for r in related) - {term_id},
            "about " + term_id if text else None,
            deprecated,
        )
    return terms


@st.composite
def any_taxonomies(draw: st.DrawFn) -> Taxonomy:
    """Anything a downstream file might hold: cycles, dangling references, alias clashes."""
    order, shapes = draw(_SHAPES)
    pool = LABELS[:2] + ALIASES[:4]
    terms: Taxonomy = {}
    for index, (parent, label, aliases, related, _, deprecated, replaced) in enumerate(shapes):
        term_id = order[index]
        terms[term_id] = Term(
            term_id,
            (LABELS + ALIASES[:2])[label],
            IDS[parent] if parent < len(IDS) else None,
            frozenset(pool[a % len(pool)] for a in aliases),
            frozenset(IDS[r] for r in related),
            None,
            deprecated,
            IDS[replaced] if replaced < len(IDS) else None,
        )
    return terms


FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(valid_taxonomies(), valid_taxonomies())
def test_only_ours_changed_gives_ours(base: Taxonomy, ours: Taxonomy) -> None:
    result = merge(base, ours, dict(base))
    assert result.terms == ours and result.conflicts == ()


@FAST
@given(valid_taxonomies(), valid_taxonomies())
def test_only_theirs_changed_gives_theirs(base: Taxonomy, theirs: Taxonomy) -> None:
    result = merge(base, dict(base), theirs)
    assert result.terms == theirs and result.conflicts == ()


@FAST
@given(valid_taxonomies(), valid_taxonomies())
def test_the_same_edits_on_both_sides_give_them(base: Taxonomy, both: Taxonomy) -> None:
    result = merge(base, both, dict(both))
    assert result.terms == both and result.conflicts == ()


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[Taxonomy, Taxonomy, Taxonomy, Taxonomy]:
    """base, ours, theirs and the expected merge, with edits on disjoint terms."""
    base = draw(valid_taxonomies())
    ids = sorted(base)
    mine = set(draw(st.sets(st.sampled_from(ids)))) if ids else set()
    referenced = {p for t in base.values() for _, p in t.references()}
    sides = []
    for side, owned in (("o", mine), ("t", set(ids) - mine)):
        edited = dict(base)
        for term_id in sorted(owned):
            choice = draw(st.sampled_from(["label", "describe", "alias", "remove", "keep"]))
            old = edited[term_id]
            if choice == "label":
                edited[term_id] = old.with_values(label=f"{side} relabelled")
            elif choice == "describe":
                edited[term_id] = old.with_values(description=f"{side} text")
            elif choice == "alias":
                edited[term_id] = old.with_values(aliases=old.aliases | {f"{side}-{term_id}"})
            elif choice == "remove" and term_id not in referenced:
                del edited[term_id]
        for number in range(draw(st.integers(0, 2))):
            parent = draw(st.none() | st.sampled_from(sorted(owned))) if owned else None
            if parent not in edited:
                parent = None
            new_id = f"{side}new{number}"
            edited[new_id] = Term(new_id, f"{side} new {number}", parent)
        sides.append(edited)
    ours, theirs = sides
    expected = {i: t for i, t in theirs.items() if i not in mine}
    expected |= {i: t for i, t in ours.items() if i in mine or i.startswith("onew")}
    return base, ours, theirs, expected


@FAST
@given(disjoint_edits())
def test_edits_that_do_not_overlap_are_all_in_the_result(
    case: tuple[Taxonomy, Taxonomy, Taxonomy, Taxonomy],
) -> None:
    base, ours, theirs, expected = case
    for strategy in ("spec", "target", "fail"):
        result = merge(base, ours, theirs, strategy)  # type: ignore[arg-type]
        assert result.terms == expected
        assert result.conflicts == ()


@FAST
@given(valid_taxonomies(), valid_taxonomies(), any_taxonomies())
def test_the_result_validates_or_the_merge_reports_a_conflict(
    base: Taxonomy, ours: Taxonomy, theirs: Taxonomy
) -> None:
    for strategy in ("spec", "target"):
        assert problems(merge(base, ours, theirs, strategy).terms) == []  # type: ignore[arg-type]
    failed = merge(base, ours, theirs, "fail")
    assert failed.unresolved or not problems(failed.terms)
