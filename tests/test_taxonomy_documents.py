"""Taxonomy target files (deterministic JSON and YAML, strict reading), the spec model's
checks with file:line, and the term-level change descriptions."""

from __future__ import annotations

import difflib
import io
import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.errors import SpecError
from reconciler.kinds.registry import default_registry
from reconciler.kinds.taxonomy.changes import describe, term_changes
from reconciler.kinds.taxonomy.documents import DocumentError, document, parse, render
from reconciler.kinds.taxonomy.terms import Taxonomy, Term
from reconciler.specs import load_directory

TERMS: Taxonomy = {
    "infra": Term("infra", "Infrastructure", aliases=frozenset({"ops", "platform"})),
    "infra.ci": Term("infra.ci", "CI/CD", parent="infra", related=frozenset({"infra.deploy"})),
    "infra.deploy": Term("infra.deploy", "Deployment", parent="infra", description="Shipping"),
    "old": Term("old", "Old", deprecated=True, replaced_by="infra"),
}


def ruamel_load(text: str) -> object:
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_files_are_sorted_and_stable(fmt: str) -> None:
    text = render("docs", TERMS, fmt)  # type: ignore[arg-type]
    shuffled = dict(reversed(list(TERMS.items())))
    assert render("docs", shuffled, fmt) == text  # type: ignore[arg-type]
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert parse(text, fmt, "docs") == TERMS  # type: ignore[arg-type]
    data = json.loads(text) if fmt == "json" else ruamel_load(text)
    assert data == document("docs", TERMS)
    assert [t["id"] for t in data["terms"]] == sorted(TERMS)  # type: ignore[index]
    assert all(list(t) == sorted(t) for t in data["terms"])  # type: ignore[index]


def test_json_is_two_space_indented_with_empty_fields_left_out() -> None:
    text = render("docs", TERMS, "json")
    assert text == json.dumps(document("docs", TERMS), indent=2, sort_keys=True) + "\n"
    assert '"parent": null' not in text and '"deprecated": false' not in text


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_a_changed_term_changes_only_its_own_lines(fmt: str) -> None:
    before = render("docs", TERMS, fmt).splitlines()  # type: ignore[arg-type]
    changed = TERMS | {"infra.ci": TERMS["infra.ci"].with_values(label="Pipelines")}
    after = render("docs", changed, fmt).splitlines()  # type: ignore[arg-type]
    diff = [line for line in difflib.ndiff(before, after) if line[:1] in "+-"]
    assert len(diff) == 2 and "CI/CD" in diff[0] and "Pipelines" in diff[1]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30), st.lists(st.text(min_size=1, max_size=10), max_size=3))
@example("A\n", [])  # written plain once, and read back without its line break
def test_any_text_survives_the_yaml_writer_and_both_readers(label: str, aliases: list[str]) -> None:
    terms = {"x": Term("x", label, aliases=frozenset(aliases), description=label)}
    text = render("docs", terms, "yaml")
    assert parse(text, "yaml", "docs") == terms
    assert ruamel_load(text) == document("docs", terms)


def test_hand_edited_yaml_in_another_style_is_read_too() -> None:
    text = textwrap.dedent(
        """\
        # edited by hand
        terms:
        - {id: infra, label: Infrastructure, aliases: [ops]}
        - id: infra.ci
          label: 'CI: pipelines'
          parent: infra
        taxonomy: docs
        """
    )
    assert parse(text, "yaml", "docs") == {
        "infra": Term("infra", "Infrastructure", aliases=frozenset({"ops"})),
        "infra.ci": Term("infra.ci", "CI: pipelines", parent="infra"),
    }


@pytest.mark.parametrize(
    ("fmt", "text", "message"),
    [
        ("json", '{"taxonomy": "docs", "terms": [\n  {"id": "a",\n}', "invalid JSON (line 3)"),
        ("json", '{"taxonomy": "docs", "terms": [{"id": "a", "id": "b"}]}', "duplicate key 'id'"),
        (
            "json",
            '{"taxonomy": "docs", "terms": [{"id": "a"}]}',
            "terms[0]: a term without 'label'",
        ),
        ("json", '{"taxonomy": "other", "terms": []}', "holds taxonomy 'other', not 'docs'"),
        ("json", '{"terms": [{"id": "a", "label": "A", "weight": 3}]}', "unknown field 'weight'"),
        ("json", '{"terms": [{"id": "a", "label": "A"}, {"id": "a", "label": "B"}]}', "duplicate"),
        ("json", '["a"]', "not a taxonomy document"),
        ("yaml", "terms:\n  - id: a\n    label: [A\n", "invalid YAML"),
        ("yaml", "terms:\n  - id: a\n    label: A\n    label: B\n", "invalid YAML"),
        ("yaml", "terms:\n  - id: a\n    label: A\n    aliases: x\n", "aliases must be a list"),
        ("yaml", "terms: {}\n", "`terms` must be a list"),
    ],
)
def test_files_that_are_not_taxonomies_are_refused(fmt: str, text: str, message: str) -> None:
    with pytest.raises(DocumentError) as error:
        parse(text, fmt, "docs")  # type: ignore[arg-type]
    assert message in str(error.value)


def test_changes_are_keyed_by_term_and_described_by_category() -> None:
    after = dict(TERMS)
    after["infra.ci"] = TERMS["infra.ci"].with_values(label="Pipelines", parent=None)
    after["infra.docs"] = Term("infra.docs", "Docs", parent="infra")
    after["infra.deploy"] = Term("infra.deploy", "Deployment", deprecated=True, replaced_by="infra")
    del after["old"]
    steps = [c.to_step("unit") for c in term_changes(TERMS, after)]
    assert [(s["op"], s["term"]) for s in steps] == [
        ("update", "infra.ci"),
        ("merge", "infra.deploy"),
        ("add", "infra.docs"),
        ("remove", "old"),
    ]
    assert steps[0]["fields"] == {"label": ["CI/CD", "Pipelines"], "parent": ["infra", None]}
    assert (
        steps[0]["reason"]
        == "update infra.ci: label 'CI/CD' -> 'Pipelines'; parent 'infra' removed"
    )
    assert describe(TERMS, after) == {
        "added": ["infra.docs"],
        "removed": ["old"],
        "relabelled": ["infra.ci"],
        "moved": ["infra.ci"],
        "merged": ["infra.deploy"],
    }


# -- the spec model, through the loader ----------------------------------------------------

SPEC = """\
apiVersion: reconciler/v1
kind: Taxonomy
metadata: {name: docs}
spec:
  terms:
    - {id: infra, label: Infrastructure, aliases: [ops]}
    - {id: infra.ci, label: CI/CD, parent: infra, related: [infra.deploy]}
    - {id: infra.deploy, label: Deployment, parent: infra}
    - {id: devops, label: DevOps}
  merges:
    - {from: devops, into: infra}
  targets:
    - {repo: ../site.git, path: taxonomy/index.json}
    - {repo: ../search, branch: pages, path: index/taxonomy.yml}
"""


def load(tmp_path: Path, text: str) -> object:
    (tmp_path / "specs").mkdir(exist_ok=True)
    (tmp_path / "specs" / "tax.yaml").write_text(text)
    return load_directory(
        tmp_path / "specs", default_registry().spec_models(), display_root="specs"
    )


def test_a_good_spec_loads_with_paths_resolved_and_formats_inferred(tmp_path: Path) -> None:
    specs = load(tmp_path, SPEC)
    (resource,) = specs.resources  # type: ignore[attr-defined]
    first, second = resource.spec.targets
    assert first.repo == str(tmp_path / "site.git") and first.format == "json"
    assert (second.repo, second.branch, second.format) == (
        str(tmp_path / "search"),
        "pages",
        "yaml",
    )
    folded = resource.spec.taxonomy
    assert folded["infra"].aliases == {"ops", "DevOps"} and folded["devops"].deprecated
    assert resource.public_dict()["spec"]["merges"] == [
        {"from": "devops", "into": "infra", "keepTombstone": True}
    ]


def test_every_problem_of_a_spec_is_reported_with_its_line(tmp_path: Path) -> None:
    bad = SPEC.replace("parent: infra, related", "parent: nowhere, related")
    bad = bad.replace(
        "{id: infra.deploy, label: Deployment, parent: infra}", "{id: infra, label: Again}"
    )
    bad = bad.replace("{id: devops, label: DevOps}", "{id: devops, label: DevOps, aliases: [OPS]}")
    bad = bad.replace("into: infra}", "into: missing}")
    with pytest.raises(SpecError) as error:
        load(tmp_path, bad)
    assert [str(p) for p in error.value.problems] == [
        "specs/tax.yaml:7: Taxonomy/docs: spec.terms[1].related[0]: unknown term 'infra.deploy'",
        "specs/tax.yaml:7: Taxonomy/docs: spec.terms[1].parent: unknown term 'nowhere'",
        "specs/tax.yaml:8: Taxonomy/docs: spec.terms[2].id: "
        "duplicate term id 'infra' (first at terms[0])",
        "specs/tax.yaml:11: Taxonomy/docs: spec.merges[0].into: unknown term 'missing'",
    ]


def test_cycles_and_ambiguous_aliases_are_found_after_the_term_merges(tmp_path: Path) -> None:
    bad = SPEC.replace(
        "    - {id: infra, label: Infrastructure, aliases: [ops]}",
        "    - {id: tools, label: Tools, aliases: [devops]}\n"
        "    - {id: infra, label: Infrastructure, parent: infra.ci, aliases: [ops]}",
    )
    with pytest.raises(SpecError) as error:
        load(tmp_path, bad)
    assert [str(p) for p in error.value.problems] == [
        "specs/tax.yaml:7: Taxonomy/docs: spec.terms[1].parent: parent cycle: "
        "infra -> infra.ci -> infra",
        "specs/tax.yaml:12: Taxonomy/docs: spec.merges[0].from: merging 'devops': "
        "alias 'DevOps' is also an alias of 'tools'",
    ]


def test_spec_file_edits_keep_style_comments_and_order(tmp_path: Path) -> None:
    from reconciler.kinds.taxonomy.specfile import SpecFile

    path = tmp_path / "tax.yaml"
    path.write_text(
        "# first document: not ours\n"
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: m}\n"
        "spec: {source: {url: a.git}, destinations: [{url: b.git}]}\n"
        "---\n"
        "apiVersion: reconciler/v1\nkind: Taxonomy\nmetadata: {name: docs}\nspec:\n"
        "  terms:\n"
        "  - id: infra          # the root\n"
        "    label: Infrastructure\n"
        "    aliases: [ops]\n"
        "  - id: old\n"
        "    label: Old\n"
        "    parent: infra\n"
        "  targets: [{repo: x.git, path: t.json}]\n"
    )
    specfile = SpecFile.load(path, "docs")
    specfile.update("infra", {"label": "Infra", "aliases": frozenset({"ops", "platform"})})
    specfile.update("infra", {"description": "Everything below", "parent": None})
    specfile.remove("old")
    specfile.add(Term("new", "New", parent="infra", related=frozenset({"infra"})))
    specfile.save()
    assert path.read_text().split("---\n")[1] == (
        "apiVersion: reconciler/v1\nkind: Taxonomy\nmetadata: {name: docs}\nspec:\n"
        "  terms:\n"
        "  - id: infra          # the root\n"
        "    label: Infra\n"
        "    aliases: [ops, platform]\n"
        "    description: Everything below\n"
        "  - id: new\n"
        "    label: New\n"
        "    parent: infra\n"
        "    related: [infra]\n"
        "  targets: [{repo: x.git, path: t.json}]\n"
    )
    assert path.read_text().startswith("# first document: not ours\napiVersion")
