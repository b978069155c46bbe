"""The context controllers get is explicit: built whole from the specs of the run and the
workspace's settings, never from what an earlier call left behind (issue 13)."""

from __future__ import annotations

import textwrap
from dataclasses import FrozenInstanceError
from pathlib import Path

import click
import pytest

from reconciler.cli.context import TopOptions, current_workspace, reading_workspace
from reconciler.cli.main import cli
from reconciler.engine.planning import load
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError
from reconciler.store import Store
from tests.conftest import Workspace as CliWorkspace
from tests.conftest import ok
from tests.gitservers import WorkRepo, git, make_bare


def _write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(textwrap.dedent(text).lstrip("\n"))


def _mirror(directory: Path, name: str, destination: Path) -> None:
    _write(
        directory,
        f"{name}.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: {name}}}
        spec:
          source: {{url: "{destination.parent}/source/{{repo}}.git"}}
          destinations: [{{url: "{destination}/{{repo}}.git"}}]
          repos: [app]
        """,
    )


def test_the_context_carries_the_specs_it_is_given_whatever_was_loaded_before(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state" / "reconciler.db"
    _mirror(tmp_path / "a", "first", tmp_path / "dest-a")
    _mirror(tmp_path / "b", "second", tmp_path / "dest-b")
    first = Workspace(specs=str(tmp_path / "a"), state=state)
    specs_a = load(first)
    specs_b = load(Workspace(specs=str(tmp_path / "b"), state=state))
    load(first)  # loading again (or loading other specs) changes no later context

    fresh = Workspace(specs=str(tmp_path / "b"), state=state)  # has loaded nothing
    for workspace in (first, fresh):
        context = workspace.context(specs_a)
        assert set(context.resources) == {"Mirror/first"}
        assert context.spec_commit is None  # read from a directory
        assert context.repository("Mirror/first", "app").url == f"{tmp_path}/dest-a/app.git"
    assert set(first.context(specs_b).resources) == {"Mirror/second"}


def test_a_repository_is_asked_of_the_kind_that_serves_it(tmp_path: Path) -> None:
    _mirror(tmp_path / "specs", "m", tmp_path / "dest")
    _write(
        tmp_path / "specs",
        "taxonomy.yaml",
        """
        apiVersion: reconciler/v1
        kind: Taxonomy
        metadata: {name: t}
        spec:
          terms: [{id: a, label: A}]
          targets: [{repo: ../site.git, path: taxonomy.json}]
        """,
    )
    workspace = Workspace(specs=str(tmp_path / "specs"), state=tmp_path / "state.db")
    context = workspace.context(load(workspace))
    assert context.repository("Mirror/m", "web").url == f"{tmp_path}/dest/web.git"
    for address in ("Mirror/gone", "Taxonomy/t"):  # missing, or a kind that serves none
        with pytest.raises(ReconcilerError, match=f"^no {address} in the specs$"):
            context.repository(address, "app")


def test_command_options_reach_the_workspace_at_construction(tmp_path: Path) -> None:
    options = TopOptions(specs=str(tmp_path / "specs"), state=tmp_path / "state.db")
    with click.Context(cli, obj=options):
        workspace = current_workspace(parallelism=3)
        reading = reading_workspace()
    assert workspace.parallelism == 3 and not workspace.read_only
    assert workspace.state == (tmp_path / "state.db").absolute()
    assert reading.read_only and reading.parallelism == 4
    (tmp_path / "specs").mkdir()
    assert workspace.context(load(workspace)).parallelism == 3
    with pytest.raises(FrozenInstanceError):
        workspace.parallelism = 1  # type: ignore[misc]


def test_parallelism_on_the_command_line_plans_and_applies(ws: CliWorkspace) -> None:
    destination = ws.root / "dest"
    make_bare(ws.root / "source" / "app.git")
    destination.mkdir()
    _mirror(ws.specs, "m", destination)
    ok(ws.run("plan", "--parallelism", "2"))
    ok(ws.run("apply", "--yes", "--parallelism", "1"))


def test_a_taxonomy_commit_names_the_spec_commit_the_engine_ran_from(ws: CliWorkspace) -> None:
    site = make_bare(ws.root / "site.git")
    specs = WorkRepo.create(ws.root / "specrepo")
    sha = specs.commit(
        "specs",
        {
            "taxonomy.yaml": textwrap.dedent(
                f"""\
                apiVersion: reconciler/v1
                kind: Taxonomy
                metadata: {{name: docs}}
                spec:
                  terms: [{{id: a, label: A}}]
                  targets: [{{repo: "{site}", path: taxonomy.json}}]
                """
            )
        },
    )
    ok(ws.run("--specs", f"{specs.path}#main", "apply", "--yes"))
    message = git("log", "-1", "--format=%B", "main", cwd=site).stdout
    assert f"Spec commit: {sha}\n" in message
    (version,) = Store(ws.state, read_only=True).versions("Taxonomy/docs")
    assert version["meta"]["spec_commit"] == sha


def test_pull_reaches_the_taxonomy_through_the_engine_with_the_same_messages(
    ws: CliWorkspace,
) -> None:
    make_bare(ws.root / "site.git")
    ws.write_spec(
        "taxonomy.yaml",
        """
        apiVersion: reconciler/v1
        kind: Taxonomy
        metadata: {name: docs}
        spec:
          terms: [{id: a, label: A}]
          targets: [{repo: ../site.git, path: taxonomy.json}]
        """,
    )
    missing = ok(ws.run("taxonomy", "pull", "nope"), 1)
    assert missing.stderr == "error: no Taxonomy named nope in specs\n"
    target = ok(ws.run("taxonomy", "pull", "docs", "--target", "web"), 1)
    assert target.stderr.endswith(
        "Error: Invalid value for --target: no target 'web' "
        f"(targets: 0: {ws.root}/site.git@main:taxonomy.json)\n"
    )
    nothing = ok(ws.run("taxonomy", "pull", "docs", "--target", "0", "--dry-run"))
    assert nothing.stdout.endswith(
        "Nothing to pull: the targets carry no downstream edits the spec lacks.\n"
    )
