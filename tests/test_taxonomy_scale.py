"""Taxonomy terms kept in a file (`termsFrom`), and what makes large taxonomies fast: the
fast reader agrees with the spec's own model, errors name the terms file's line, the file's
content is part of the spec's digest, the hand-written renderers give the bytes json and
the YAML writer give, versions are stored once per distinct chunk, and a 20,000-term
taxonomy plans, applies and then plans nothing."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bench.taxonomy_merge import build
from reconciler.errors import SpecError
from reconciler.kinds.registry import default_registry
from reconciler.kinds.taxonomy import yamlio
from reconciler.kinds.taxonomy.documents import canonical_items, document, from_content, render
from reconciler.kinds.taxonomy.model import TaxonomySpec
from reconciler.kinds.taxonomy.terms import Term
from reconciler.specs import load_directory
from reconciler.store import Store
from reconciler.store.contents import digest_of, version_content
from reconciler.store.database import canonical_digest, dumps
from tests.conftest import Workspace, ok
from tests.gitservers import git, make_bare

SPEC = """\
apiVersion: reconciler/v1
kind: Taxonomy
metadata: {{name: docs}}
spec:
  termsFrom: {{file: {file}}}
  targets:
    - {{repo: ../site.git, path: taxonomy.json}}
    - {{repo: ../search.git, path: index/taxonomy.yaml}}
"""
TERMS = [
    {"id": "infra", "label": "Infrastructure", "aliases": ["ops", "platform"]},
    {"id": "infra.ci", "label": "CI/CD", "parent": "infra", "related": ["infra.deploy"]},
    {"id": "infra.deploy", "label": "Deployment", "parent": "infra", "description": "Ship"},
    {"id": "old", "label": "Old", "deprecated": True, "replacedBy": "infra"},
]
CSV = """\
id,label,parent,aliases,related,description,deprecated,replacedBy
infra,Infrastructure,,ops|platform,,,,
infra.ci,CI/CD,infra,,infra.deploy,,false,
infra.deploy,Deployment,infra,,,Ship,,
old,Old,,,,,true,infra
"""


def models() -> dict[str, Any]:
    return default_registry().spec_models()


def write(specs: Path, file: str, content: str) -> None:
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "docs.yaml").write_text(SPEC.format(file=file))
    (specs / file).write_text(content)


def taxonomy_of(specs: Path) -> dict[str, Term]:
    (resource,) = load_directory(specs, models()).resources
    assert isinstance(resource.spec, TaxonomySpec)
    return resource.spec.taxonomy


def problems(specs: Path) -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_directory(specs, models())
    return [str(p) for p in raised.value.problems]


def test_json_and_csv_files_give_the_terms_a_spec_would(tmp_path: Path) -> None:
    write(tmp_path / "json", "terms.json", json.dumps(TERMS, indent=2))
    write(tmp_path / "csv", "terms.csv", CSV)
    inline = TaxonomySpec.model_validate(
        {"terms": TERMS, "targets": [{"repo": "/r.git", "path": "t.json"}]}
    )
    assert taxonomy_of(tmp_path / "json") == inline.taxonomy
    assert taxonomy_of(tmp_path / "csv") == inline.taxonomy
    shaped = tmp_path / "object"  # a target file's shape: {"taxonomy": ..., "terms": [...]}
    write(shaped, "terms.json", json.dumps({"taxonomy": "docs", "terms": TERMS}))
    assert taxonomy_of(shaped) == inline.taxonomy


def test_a_term_the_fast_reader_refuses_is_judged_by_the_spec_model(tmp_path: Path) -> None:
    # Lax values the model accepts (deprecated: "yes") are read as a spec would read them.
    terms = [{"id": "a", "label": "A", "deprecated": "yes"}, {"id": "b", "label": "B"}]
    write(tmp_path, "terms.json", json.dumps(terms))
    assert taxonomy_of(tmp_path)["a"].deprecated is True


def test_errors_name_the_terms_file_line_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files are named relative to the working directory
    text = textwrap.dedent(
        """\
        [
          {"id": "infra", "label": "Infrastructure"},
          {"id": "infra.ci",
           "label": "CI",
           "parent": "nowhere"},
          {"id": "bad id", "label": ""},
          {"id": "x", "label": "X", "aliases": ["a", "A"], "colour": "red"}
        ]
        """
    )
    write(tmp_path, "terms.json", text)
    found = problems(tmp_path)
    at, terms = "docs.yaml:5: Taxonomy/docs: spec.termsFrom.file: ", "terms.json"
    assert f"{at}{terms}:6: terms[2].id: invalid term id 'bad id'" in "\n".join(found)
    assert f"{at}{terms}:6: terms[2].label: string should have at least 1 character" in found
    assert f"{at}{terms}:7: terms[3].aliases[1]: 'A' is listed twice" in found
    assert any(f"{terms}:7: terms[3].colour: unknown field; valid fields: " in p for p in found)
    # Once every term is well formed, the checks across terms run, placed the same way.
    write(tmp_path, "terms.json", text.replace('"bad id", "label": ""', '"ok", "label": "Ok"'))
    write(
        tmp_path,
        "terms.json",
        (tmp_path / "terms.json").read_text().replace(', "A"], "colour": "red"', "]"),
    )
    assert problems(tmp_path) == [f"{at}{terms}:5: terms[1].parent: unknown term 'nowhere'"]


def test_csv_errors_name_the_row_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "terms.csv", 'id,label,parent\ninfra,Infra,\n"multi\nline",M,\nci,CI,gone\n')
    found = problems(tmp_path)
    terms = "terms.csv"
    assert any(f"{terms}:3: terms[1].id: invalid term id 'multi\\nline'" in p for p in found)
    write(tmp_path, "terms.csv", "id,label,parent\ninfra,Infra,\nci,CI,gone\n")
    assert problems(tmp_path)[0].endswith(f"{terms}:3: terms[1].parent: unknown term 'gone'")
    write(tmp_path, "terms.csv", "id,label,colour\ninfra,Infra,red\n")
    assert problems(tmp_path)[0].endswith(
        f"{terms}:1: unknown column 'colour'; valid columns: id, label, parent, aliases, "
        "related, description, deprecated, replacedBy"
    )


def test_file_level_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "terms.json", '[\n  {"id": "a", "label": "A"}\n  {"id": "b"}\n]\n')
    terms = "terms.json"
    assert problems(tmp_path)[0].endswith(f"{terms}:3: invalid JSON: Expecting ',' delimiter")
    (tmp_path / "terms.json").unlink()
    assert "cannot read: No such file or directory" in problems(tmp_path)[0]
    write(tmp_path, "terms.json", "[]")
    spec = (tmp_path / "docs.yaml").read_text()
    (tmp_path / "docs.yaml").write_text(spec.replace("  targets:", "  terms: []\n  targets:"))
    assert "spec.terms: terms and termsFrom exclude each other" in problems(tmp_path)[0]


def test_the_file_must_stay_inside_the_spec_files_directory(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    write(specs, "terms.json", "[]")
    (tmp_path / "outside.json").write_text("[]")
    (specs / "docs.yaml").write_text(SPEC.format(file="../outside.json"))
    assert "no '..', not absolute" in problems(specs)[0]
    (specs / "link.json").symlink_to(tmp_path / "outside.json")
    (specs / "docs.yaml").write_text(SPEC.format(file="link.json"))
    assert "link.json leads out of the spec file's directory" in problems(specs)[0]


def test_the_terms_files_content_is_part_of_the_spec_digest(ws: Workspace) -> None:
    make_bare(ws.root / "site.git")
    make_bare(ws.root / "search.git")
    write(ws.specs, "terms.json", json.dumps(TERMS))
    first = ok(ws.run("validate")).stdout
    ok(ws.run("apply", "--yes"))
    ok(ws.run("plan", "--detailed-exitcode"))
    changed = [dict(TERMS[0], label="Platform"), *TERMS[1:]]
    (ws.specs / "terms.json").write_text(json.dumps(changed))
    assert ok(ws.run("validate")).stdout != first
    plan = ok(ws.run("plan", "--json", "--detailed-exitcode"), code=2).stdout
    change = json.loads(plan)["changes"][0]
    assert change["action"] == "update"
    assert "spec.termsFrom.digest" in change["reason"]
    assert {"op": "update", "term": "infra"}.items() <= change["steps"][1].items()


def test_renderers_give_the_bytes_of_the_general_writers() -> None:
    terms = build(3_000)
    terms["x"] = Term(
        "x",
        'Lab"el \u00e9 \u2028 \x01 \\ / ok',
        None,
        frozenset({"é", "a\tb"}),
        frozenset({"t000001"}),
        "two\nlines",
        True,
        "t000002",
    )
    data = document("docs", terms)
    expected = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert render("docs", terms, "json") == expected
    assert render("docs", terms, "yaml") == yamlio.dump("docs", data["terms"])
    assert render("docs", {}, "json") == json.dumps(document("docs", {}), indent=2) + "\n"
    assert canonical_items(terms) == [dumps(item) for item in data["terms"]]
    assert digest_of({"taxonomy": "docs"}, "terms", canonical_items(terms)) == canonical_digest(
        data
    )


def _store_size(state: Path) -> tuple[int, int]:
    connection = sqlite3.connect(state)
    try:
        chunks = connection.execute("SELECT COUNT(*), SUM(LENGTH(data)) FROM version_chunks")
        count, size = chunks.fetchone()
        return int(count), int(size)
    finally:
        connection.close()


def test_twenty_thousand_terms_plan_apply_and_then_plan_nothing(ws: Workspace) -> None:
    make_bare(ws.root / "site.git")
    make_bare(ws.root / "search.git")
    terms = [term.to_dict() for term in build(20_000).values()]
    write(ws.specs, "terms.json", json.dumps(terms, indent=1))
    assert "20000 terms" in ok(ws.run("plan", "--detailed-exitcode"), code=2).stdout
    ok(ws.run("apply", "--yes"))
    assert "in sync with the spec's 20000 terms" in ok(ws.run("plan", "--detailed-exitcode")).stdout
    written = json.loads(git("show", "main:taxonomy.json", cwd=ws.root / "site.git").stdout)
    assert written == document("docs", from_content({"terms": terms}))
    first = _store_size(ws.state)
    for number in range(3):  # one term relabelled each time: a version each, sharing chunks
        terms[len(terms) // 2]["label"] = f"Edited {number}"
        (ws.specs / "terms.json").write_text(json.dumps(terms, indent=1))
        ok(ws.run("apply", "--yes"))
        ok(ws.run("plan", "--detailed-exitcode"))
    count, size = _store_size(ws.state)
    assert count - first[0] <= 2 * 3 and size - first[1] < first[1] / 10
    store = Store(ws.state, read_only=True)
    numbers = [int(v["version"]) for v in store.versions("Taxonomy/docs")]
    assert numbers == [4, 3, 2, 1]
    latest = version_content(store, "Taxonomy/docs", 4)
    assert latest == document("docs", from_content({"terms": terms}))
    assert canonical_digest(latest) == store.versions("Taxonomy/docs")[0]["digest"]
    ok(ws.run("rollback", "Taxonomy/docs", "--to", "1"))
    rolled = json.loads(git("show", "main:taxonomy.json", cwd=ws.root / "site.git").stdout)
    assert {t["id"]: t for t in rolled["terms"]}[terms[len(terms) // 2]["id"]]["label"] == (
        f"Term {len(terms) // 2}"
    )


def test_pull_refuses_a_taxonomy_whose_terms_come_from_a_file(ws: Workspace) -> None:
    make_bare(ws.root / "site.git")
    make_bare(ws.root / "search.git")
    write(ws.specs, "terms.json", json.dumps(TERMS))
    ok(ws.run("apply", "--yes"))
    result = ws.run("taxonomy", "pull", "docs")
    assert result.code == 1
    assert "reads its terms from terms.json; pull writes terms into the spec file only" in (
        result.stderr
    )
    assert "terms:" not in (ws.specs / "docs.yaml").read_text()
