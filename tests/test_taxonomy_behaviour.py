"""Taxonomy through the CLI, on real repositories: a bare repo, a working copy and a repo
behind `git daemon` as targets; downstream edits made with git itself."""

from __future__ import annotations

import difflib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace
from tests.gitservers import GitDaemon, GitHttpServer, WorkRepo, git, make_bare

TERMS = """\
    - {id: infra, label: Infrastructure, aliases: [ops]}
    - {id: infra.ci, label: CI/CD, parent: infra, related: [infra.deploy]}
    - {id: infra.deploy, label: Deployment, parent: infra, description: Shipping releases}
"""


def write_spec(
    ws: Workspace, targets: list[str], terms: str = TERMS, extra: str = "", name: str = "docs"
) -> Path:
    """specs/taxonomy.yaml with these terms and targets (each a flow mapping)."""
    text = textwrap.dedent(
        f"""\
        apiVersion: reconciler/v1
        kind: Taxonomy
        metadata: {{name: {name}}}
        spec:
          terms:
        """
    )
    text += textwrap.indent(textwrap.dedent(terms), "    ")
    text += "  targets:\n" + "".join(f"    - {t}\n" for t in targets)
    text += textwrap.indent(textwrap.dedent(extra), "  ")
    path = ws.specs / "taxonomy.yaml"
    path.write_text(text)
    return path


def show(repo: Path | str, path: str, branch: str = "main") -> str:
    """The file's content at the branch tip."""
    return git("show", f"{branch}:{path}", cwd=repo).stdout


def terms_of(text: str) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in json.loads(text)["terms"]}


def edit_downstream(
    ws: Workspace, bare: Path, path: str, change: Any, name: str = "edit", indent: int = 4
) -> str:
    """Clone `bare`, let `change(terms)` edit the JSON file's terms, commit, push; the sha.
    The file is written as a person's editor would (indent 4), or as reconciler writes it
    (indent 2, sorted)."""
    work = WorkRepo.create(ws.root / f"clone-{name}", bare)
    data = json.loads((work.path / path).read_text())
    terms = {t["id"]: t for t in data["terms"]}
    change(terms)
    data["terms"] = [terms[key] for key in (sorted(terms) if indent == 2 else terms)]
    text = json.dumps(data, indent=indent, sort_keys=indent == 2) + "\n"
    sha = work.commit(f"downstream: {name}", {path: text})
    work.push(bare, "main:main")
    return sha


def plan_json(ws: Workspace) -> dict[str, Any]:
    result = ws.run("plan", "--json")
    assert result.code == 0, result.output
    (change,) = json.loads(result.stdout)["changes"]
    return dict(change)


def applied(ws: Workspace, check: bool = True) -> str:
    """Apply; with `check`, the next plan must be empty (applying twice changes nothing)."""
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert not check or ws.run("plan", "--detailed-exitcode").code == 0
    return result.stdout


def commits(repo: Path, branch: str = "main") -> list[str]:
    return git("log", "--format=%H", branch, cwd=repo).stdout.split()


def test_every_kind_of_target_is_written_once_and_the_next_plan_is_empty(
    ws: Workspace, daemon: GitDaemon
) -> None:
    site = make_bare(ws.root / "site.git")
    work = WorkRepo.create(ws.root / "search")
    work.commit("start", {"README.md": "search\n"})
    make_bare(daemon.root / "roadmap.git")
    write_spec(
        ws,
        [
            "{repo: ../site.git, path: taxonomy/index.json}",
            "{repo: ../search, path: index/taxonomy.yaml}",
            f"{{repo: '{daemon.url('roadmap.git')}', branch: pages, path: terms.json}}",
        ],
    )
    plan = plan_json(ws)
    assert plan["action"] == "create"
    assert [s["op"] for s in plan["steps"]] == ["write", "write", "write"]
    assert (
        "create branch main with taxonomy/index.json on main (3 terms)"
        in plan["steps"][0]["reason"]
    )
    applied(ws)

    expected = {
        "taxonomy": "docs",
        "terms": [
            {"aliases": ["ops"], "id": "infra", "label": "Infrastructure"},
            {"id": "infra.ci", "label": "CI/CD", "parent": "infra", "related": ["infra.deploy"]},
            {
                "description": "Shipping releases",
                "id": "infra.deploy",
                "label": "Deployment",
                "parent": "infra",
            },
        ],
    }
    assert show(site, "taxonomy/index.json") == json.dumps(expected, indent=2) + "\n"
    assert show(daemon.root / "roadmap.git", "terms.json", "pages") == show(
        site, "taxonomy/index.json"
    )
    yaml_text = (work.path / "index/taxonomy.yaml").read_text()
    assert yaml_text.startswith(
        "taxonomy: docs\nterms:\n  - aliases:\n      - ops\n    id: infra\n"
    )
    assert git("status", "--porcelain", cwd=work.path).stdout == ""  # the checkout moved too
    log = git("log", "-1", "--format=%an <%ae>%n%B", "main", cwd=site).stdout
    assert log.startswith("reconciler <reconciler@localhost>\ntaxonomy docs: version 1\n")
    assert "Spec commit: none" in log and "3 terms: 3 added" in log

    before = {repo: commits(repo) for repo in (site, work.path)}
    again = ws.run("apply", "--yes")
    assert again.code == 0 and "Nothing to apply" in again.stdout
    assert {repo: commits(repo) for repo in (site, work.path)} == before


def test_downstream_edits_are_merged_with_the_spec_not_overwritten(ws: Workspace) -> None:
    site = make_bare(ws.root / "site.git")
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"])
    applied(ws, check=False)

    def downstream(terms: dict[str, Any]) -> None:
        terms["infra.ci"]["description"] = "Pipelines"
        terms["infra"]["aliases"].append("platform")
        terms["infra.docs"] = {"id": "infra.docs", "label": "Docs", "parent": "infra"}

    edit_downstream(ws, site, "taxonomy.json", downstream)
    spec.write_text(spec.read_text().replace("label: Deployment", "label: Delivery"))
    plan = plan_json(ws)
    assert plan["action"] == "update"
    write, update = plan["steps"]  # only what the file gets: the spec's relabel
    assert write["op"] == "write" and write["reason"] == "commit taxonomy.json on main: 1 updated"
    assert update == {
        "op": "update",
        "unit": f"{site}@main:taxonomy.json",
        "term": "infra.deploy",
        "fields": {"label": ["Deployment", "Delivery"]},
        "reason": "update infra.deploy: label 'Deployment' -> 'Delivery'",
    }
    applied(ws)
    terms = terms_of(show(site, "taxonomy.json"))
    assert terms["infra.deploy"]["label"] == "Delivery"
    assert terms["infra.ci"]["description"] == "Pipelines"
    assert terms["infra"]["aliases"] == ["ops", "platform"]
    assert terms["infra.docs"]["parent"] == "infra"
    history = json.loads(ws.run("history", "Taxonomy/docs", "--json").stdout)
    assert history[0]["summary"].startswith("v2 (4 terms) -> ")
    assert history[0]["summary"].endswith(": 1 relabelled")
    assert history[0]["changes"] == {"relabelled": ["infra.deploy"]}


@pytest.mark.parametrize("strategy", ["spec", "target", "fail"])
def test_a_conflict_is_resolved_by_the_strategy(ws: Workspace, strategy: str) -> None:
    site = make_bare(ws.root / "site.git")
    extra = f"conflictStrategy: {strategy}\n"
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"], extra=extra)
    applied(ws, check=False)
    edit_downstream(ws, site, "taxonomy.json", lambda t: t["infra.ci"].update(label="Pipelines"))
    spec.write_text(spec.read_text().replace("label: CI/CD", "label: Continuous Delivery"))
    tip = commits(site)[0]
    plan = plan_json(ws)
    result = ws.run("apply", "--yes")
    label = terms_of(show(site, "taxonomy.json"))["infra.ci"]["label"]
    if strategy == "fail":
        assert plan["action"] == "blocked"
        (note,) = plan["steps"]
        assert note["op"] == "blocked"
        assert "label: the spec has 'Continuous Delivery', the target 'Pipelines'" in note["reason"]
        assert result.code == 1 and "conflictStrategy fail" in result.stdout
        assert commits(site)[0] == tip and label == "Pipelines"
        assert ws.run("plan", "--detailed-exitcode").code == 2
        return
    conflict = next(s for s in plan["steps"] if s["op"] == "conflict")
    assert (conflict["term"], conflict["field"], conflict["resolution"]) == (
        "infra.ci",
        "label",
        strategy,
    )
    assert conflict["spec"] == "Continuous Delivery" and conflict["target"] == "Pipelines"
    assert result.code == 0, result.output
    assert label == {"spec": "Continuous Delivery", "target": "Pipelines"}[strategy]
    assert ws.run("plan", "--detailed-exitcode").code == 0
    history = json.loads(ws.run("history", "Taxonomy/docs", "--json").stdout)
    assert history[0]["conflicts"][0]["resolution"] == strategy
    assert f"1 conflicts resolved ({strategy} wins)" in history[0]["summary"]


def test_a_term_merge_rewrites_children_and_related_terms_even_downstream_ones(
    ws: Workspace,
) -> None:
    site = make_bare(ws.root / "site.git")
    terms = TERMS + (
        "    - {id: devops, label: DevOps, aliases: [sre]}\n"
        "    - {id: devops.oncall, label: On call, parent: devops, related: [infra.ci]}\n"
    )
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"], terms=terms)
    applied(ws, check=False)

    def downstream(terms: dict[str, Any]) -> None:
        terms["runbooks"] = {"id": "runbooks", "label": "Runbooks", "related": ["devops"]}

    edit_downstream(ws, site, "taxonomy.json", downstream)
    spec.write_text(spec.read_text() + "  merges:\n    - {from: devops, into: infra}\n")
    steps = {(s["op"], s["term"]) for s in plan_json(ws)["steps"] if "term" in s}
    assert ("merge", "devops") in steps and ("update", "runbooks") in steps
    applied(ws)
    result = terms_of(show(site, "taxonomy.json"))
    assert result["devops"] == {
        "deprecated": True,
        "id": "devops",
        "label": "DevOps",
        "replacedBy": "infra",
    }
    assert result["infra"]["aliases"] == ["DevOps", "ops", "sre"]
    assert result["devops.oncall"]["parent"] == "infra"
    assert result["runbooks"]["related"] == ["infra"]
    summary = json.loads(ws.run("history", "Taxonomy/docs", "--json").stdout)[0]["summary"]
    assert "1 merged" in summary and "1 moved" in summary


def test_a_target_file_that_does_not_parse_is_blocked_and_the_others_proceed(
    ws: Workspace,
) -> None:
    site, other = make_bare(ws.root / "site.git"), make_bare(ws.root / "other.git")
    spec = write_spec(
        ws,
        ["{repo: ../site.git, path: taxonomy.json}", "{repo: ../other.git, path: taxonomy.json}"],
    )
    applied(ws, check=False)
    broken = WorkRepo.create(ws.root / "broken", site)
    broken.commit("oops", {"taxonomy.json": '{"taxonomy": "docs", "terms": [\n  {"id": \n'})
    broken.push(site, "main:main")
    spec.write_text(spec.read_text().replace("label: Deployment", "label: Delivery"))
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert (
        f"Taxonomy/docs: cannot parse taxonomy.json at {broken.rev('HEAD')[:7]}: " in result.stdout
    )
    assert "invalid JSON (line 3)" in result.stdout and "the file is left as it is" in result.stdout
    assert show(site, "taxonomy.json").startswith('{"taxonomy": "docs", "terms": [\n  {"id":')
    assert terms_of(show(other, "taxonomy.json"))["infra.deploy"]["label"] == "Delivery"
    status = json.loads(ws.run("status", "--json").stdout)[0]
    assert (status["sync"], status["health"]) == ("OutOfSync", "Degraded")


def test_rollback_re_applies_a_version_through_the_merge_and_pins_it(ws: Workspace) -> None:
    site = make_bare(ws.root / "site.git")
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"])
    applied(ws, check=False)
    spec.write_text(spec.read_text().replace("label: Deployment", "label: Delivery"))
    applied(ws, check=False)
    edit_downstream(
        ws, site, "taxonomy.json", lambda t: t.update(faq={"id": "faq", "label": "FAQ"})
    )

    result = ws.run("rollback", "Taxonomy/docs", "--to", "1")
    assert result.code == 0, result.output
    assert "Taxonomy/docs is pinned at version 1" in result.stdout
    terms = terms_of(show(site, "taxonomy.json"))
    assert terms["infra.deploy"]["label"] == "Deployment"  # version 1 again ...
    assert "faq" in terms  # ... with the downstream edit made since
    assert "roll back to version 1" in git("log", "-1", "--format=%s", "main", cwd=site).stdout
    (status,) = json.loads(ws.run("status", "--json").stdout)
    assert status["pinned"] == "version 1" and status["sync"] == "Synced"
    assert ws.run("plan", "--detailed-exitcode").code == 0  # held while pinned

    spec.write_text(spec.read_text().replace("label: Delivery", "label: Shipping"))
    plan = plan_json(ws)  # a spec change releases the pin
    assert plan["action"] == "update" and "'Deployment' -> 'Shipping'" in plan["steps"][1]["reason"]
    applied(ws)
    assert "faq" in terms_of(show(site, "taxonomy.json"))
    bad = ws.run("rollback", "Taxonomy/docs", "--to", "9")
    assert bad.code == 1 and "no version '9'; recorded versions are 1, 2, 3" in bad.output


def test_pull_brings_downstream_edits_into_the_spec_keeping_its_comments(ws: Workspace) -> None:
    site = make_bare(ws.root / "site.git")
    spec = write_spec(
        ws,
        ["{repo: ../site.git, path: taxonomy.json}"],
        terms="    # the platform vocabulary\n" + TERMS.replace("ops]}", "ops]}  # legacy alias"),
    )
    applied(ws, check=False)

    def downstream(terms: dict[str, Any]) -> None:
        terms["infra.ci"]["label"] = "Pipelines"
        terms["infra"]["aliases"].append("platform")
        terms["infra.docs"] = {"id": "infra.docs", "label": "Docs", "parent": "infra"}

    edit_downstream(ws, site, "taxonomy.json", downstream, indent=2)
    before = spec.read_text().splitlines()
    result = ws.run("taxonomy", "pull", "docs", "--target", "0")
    assert result.code == 0, result.output
    assert "+ infra.ci.label: 'CI/CD' -> 'Pipelines'" in result.stdout
    after = spec.read_text()
    changed = [line for line in difflib.ndiff(before, after.splitlines()) if line[:1] in "+-"]
    assert changed == [
        "-     - {id: infra, label: Infrastructure, aliases: [ops]}  # legacy alias",
        "+     - {id: infra, label: Infrastructure, aliases: [ops, platform]} # legacy alias",
        "-     - {id: infra.ci, label: CI/CD, parent: infra, related: [infra.deploy]}",
        "+     - {id: infra.ci, label: Pipelines, parent: infra, related: [infra.deploy]}",
        "+     - {id: infra.docs, label: Docs, parent: infra}",
    ]
    tip = commits(site)[0]
    plan = plan_json(ws)  # the target already has these edits: record the new base only
    assert [s["op"] for s in plan["steps"]] == ["adopt"]
    applied(ws)
    assert commits(site)[0] == tip
    again = ws.run("taxonomy", "pull", "docs")
    assert "Nothing to pull" in again.stdout and spec.read_text() == after


def test_a_saved_plan_is_refused_when_the_target_moved(ws: Workspace) -> None:
    site = make_bare(ws.root / "site.git")
    spec = write_spec(ws, ["{repo: ../site.git, path: taxonomy.json}"])
    applied(ws, check=False)
    spec.write_text(spec.read_text().replace("label: Deployment", "label: Delivery"))
    assert ws.run("plan", "--out", "plan.json").code == 0
    edit_downstream(ws, site, "taxonomy.json", lambda t: t["infra"].update(label="Infra"))
    result = ws.run("apply", "plan.json")
    assert result.code == 1 and "the observed facts of Taxonomy/docs changed" in result.output
    assert terms_of(show(site, "taxonomy.json"))["infra.deploy"]["label"] == "Deployment"


def test_two_files_in_one_repository_are_both_committed(ws: Workspace) -> None:
    site = make_bare(ws.root / "site.git")
    write_spec(
        ws,
        ["{repo: ../site.git, path: a/terms.json}", "{repo: ../site.git, path: b/terms.yaml}"],
    )
    applied(ws, check=False)
    assert len(commits(site)) == 2  # one per file: the second was rebuilt on the first
    assert terms_of(show(site, "a/terms.json"))["infra"]["label"] == "Infrastructure"
    assert "label: Infrastructure" in show(site, "b/terms.yaml")


def test_a_working_copy_with_uncommitted_edits_is_not_overwritten(ws: Workspace) -> None:
    work = WorkRepo.create(ws.root / "search")
    work.commit("start", {"README.md": "search\n"})
    spec = write_spec(ws, ["{repo: ../search, path: terms.json}"])
    applied(ws, check=False)
    local = (work.path / "terms.json").read_text().replace("Infrastructure", "Infra (local)")
    (work.path / "terms.json").write_text(local)
    spec.write_text(spec.read_text().replace("label: Deployment", "label: Delivery"))
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert "would be overwritten" in result.stdout
    assert (work.path / "terms.json").read_text() == local
    assert len(commits(work.path)) == 2


def test_a_password_protected_http_target_and_a_missing_repository(
    ws: Workspace, http_server: GitHttpServer
) -> None:
    make_bare(http_server.root / "site.git")
    url = http_server.url("site.git")
    write_spec(
        ws,
        [
            f"{{repo: '{url}', username: bot, password: '${{SITE_TOKEN}}', path: t.json}}",
            "{repo: ../nowhere.git, path: t.json}",
        ],
    )
    env = {"SITE_TOKEN": "s3cret-token"}
    result = ws.run("apply", "--yes", env=env)
    assert result.code == 1  # the missing repository is blocked; the other target is written
    assert "nowhere.git: not a git repository" in result.stdout
    remote = http_server.url("site.git", username="bot", password="s3cret-token")
    assert terms_of(git("show", "FETCH_HEAD:t.json", cwd=fetched(ws, remote)).stdout)
    outputs = [result, ws.run("history", "Taxonomy/docs", "--json", env=env)]
    outputs.append(ws.run("state", "show", "Taxonomy/docs", env=env))
    for output in outputs:
        assert "s3cret-token" not in output.output
    for stored in ws.state.parent.glob("reconciler.db*"):  # the WAL too
        assert b"s3cret-token" not in stored.read_bytes()


def fetched(ws: Workspace, url: str) -> Path:
    """A scratch repository holding `url`'s main branch in FETCH_HEAD."""
    scratch = ws.root / "scratch"
    git("init", "-q", scratch)
    git("fetch", "-q", url, "main", cwd=scratch)
    return scratch


def test_the_readme_example_validates(ws: Workspace) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = readme.split("### Taxonomy\n\n```yaml\n", 1)[1].split("```", 1)[0]
    ws.write_spec("example.yaml", example)
    result = ws.run("validate")
    assert result.code == 0, result.output
