"""One change costs one change (issue 14): a watcher's spec save reconciles only what it
changed, unchanged spec files are not parsed again (an edit is never missed, even one that
keeps the file's size and mtime), and `--target` touches only its targets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from reconciler.engine.workspace import Workspace as EngineWorkspace
from reconciler.errors import SpecError
from reconciler.kinds.registry import default_registry
from reconciler.specs import load_directory
from reconciler.specs.filecache import FileCache
from reconciler.watch.watching import Watcher, WatchOptions
from tests.conftest import Workspace, ok
from tests.gitservers import refs_of, seed_bare


def _mirror(ws: Workspace, name: str, branches: str = "[main]", depends: str = "[]") -> None:
    ws.write_spec(
        f"{name}.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: {name}, dependsOn: {depends}}}
        spec:
          source: {{url: ../{name}-src.git}}
          destinations: [{{url: ../{name}-dst.git}}]
          branches: {branches}
        """,
    )


def _world(ws: Workspace, names: list[str]) -> None:
    for name in names:
        seed_bare(ws.root / f"{name}-src.git", branches=("main", "dev"))
        _mirror(ws, name)


def _watcher(ws: Workspace) -> tuple[Watcher, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    workspace = EngineWorkspace(specs=str(ws.specs), state=ws.state)
    options = WatchOptions(listen=None, debounce_ms=10, forget_after=0.1)
    return Watcher(workspace, options, events.append), events


def _reconciles(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == "reconcile"]


def test_a_saved_spec_reconciles_only_the_resource_it_changed(ws: Workspace) -> None:
    _world(ws, ["alpha", "beta", "gamma"])
    watcher, events = _watcher(ws)
    assert watcher.reconcile({"start"})
    # beta's source goes away: a full reconcile would find it unobservable (blocked).
    shutil.rmtree(ws.root / "beta-src.git")
    _mirror(ws, "alpha", "[main, dev]")
    assert watcher.reconcile({"file"})
    last = _reconciles(events)[-1]
    assert last["outcome"] == "success" and last["blocked"] == []
    assert sum(last["changes"].values()) == 1, last  # alpha alone was planned
    assert "refs/heads/dev" in refs_of(ws.root / "alpha-dst.git")
    # The interval still looks at everything, and finds beta's source gone.
    assert not watcher.reconcile({"interval"})
    assert any("Mirror/beta" in b for b in _reconciles(events)[-1]["blocked"])


def test_a_saved_spec_also_reconciles_what_depends_on_it(ws: Workspace) -> None:
    _world(ws, ["base", "top", "other"])
    _mirror(ws, "top", depends="[Mirror/base]")
    watcher, events = _watcher(ws)
    assert watcher.reconcile({"start"})
    _mirror(ws, "base", "[main, dev]")
    assert watcher.reconcile({"file"})
    assert sum(_reconciles(events)[-1]["changes"].values()) == 2  # base and top, not other


def test_a_save_that_changes_nothing_applies_nothing(ws: Workspace) -> None:
    _world(ws, ["alpha"])
    watcher, events = _watcher(ws)
    assert watcher.reconcile({"start"})
    (ws.specs / "alpha.yaml").touch()
    assert watcher.reconcile({"file"})
    assert _reconciles(events)[-1]["changes"] == {}


def test_unchanged_files_are_not_parsed_again_and_an_edit_keeping_mtime_is_seen(
    ws: Workspace,
) -> None:
    _world(ws, ["alpha", "beta"])
    kinds = default_registry().spec_models()
    cache = FileCache()
    first = load_directory(ws.specs, kinds, cache=cache)
    path = ws.specs / "alpha.yaml"
    before = path.stat()
    text = path.read_text()
    path.write_text(text.replace("[main]", "[dev1]"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # `touch -d` back
    assert path.stat().st_size == before.st_size
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    cache.hits = cache.misses = 0
    second = load_directory(ws.specs, kinds, cache=cache)
    assert (cache.hits, cache.misses) == (1, 1)
    new = second.by_address()
    assert new["Mirror/beta"] is first.by_address()["Mirror/beta"]  # not parsed again
    assert new["Mirror/alpha"].spec.model_dump()["branches"] == ["dev1"]


def test_a_cached_file_keeps_its_problems_and_a_fixed_one_loads(ws: Workspace) -> None:
    _world(ws, ["alpha"])
    ws.write_spec("broken.yaml", "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {}\n")
    kinds = default_registry().spec_models()
    cache = FileCache()
    errors = []
    for _ in range(2):
        try:
            load_directory(ws.specs, kinds, cache=cache)
        except SpecError as error:
            errors.append(str(error))
    assert len(errors) == 2 and errors[0] == errors[1] and "broken.yaml:" in errors[0]
    (ws.specs / "broken.yaml").unlink()
    assert len(load_directory(ws.specs, kinds, cache=cache).resources) == 1


def test_target_does_not_observe_other_resources(ws: Workspace) -> None:
    _world(ws, ["alpha", "beta"])
    ok(ws.run("apply", "--yes"))
    # beta now points at a server that is not there: a full plan shows it blocked.
    _mirror(ws, "beta")
    text = (ws.specs / "beta.yaml").read_text()
    (ws.specs / "beta.yaml").write_text(
        text.replace("../beta-src.git", "git://127.0.0.1:9/nothing.git")
    )
    _mirror(ws, "alpha", "[main, dev]")
    result = ok(ws.run("apply", "--yes", "--target", "Mirror/alpha", timeout=60))
    assert "Mirror/beta" not in result.output
    assert "refs/heads/dev" in refs_of(ws.root / "alpha-dst.git")
    plan = ok(ws.run("plan", "--target", "Mirror/alpha", "--detailed-exitcode"))
    assert "Mirror/beta" not in plan.output


def test_target_with_a_broken_spec_elsewhere_still_refuses(ws: Workspace) -> None:
    """The rule kept: every spec is loaded and validated, with or without --target."""
    _world(ws, ["alpha"])
    ws.write_spec("broken.yaml", "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {}\n")
    for command in (("plan",), ("apply", "--yes"), ("validate",)):
        args = (*command, "--target", "Mirror/alpha") if command[0] != "validate" else command
        result = ok(ws.run(*args), 1)
        assert "broken.yaml:" in result.output


def test_files_cache_is_safe_when_the_working_directory_changes(ws: Workspace) -> None:
    _world(ws, ["alpha"])
    ws.write_spec("broken.yaml", "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {}\n")
    kinds = default_registry().spec_models()
    cache = FileCache()
    messages = []
    here = Path.cwd()
    try:
        for directory in (ws.root, ws.specs):
            os.chdir(directory)
            try:
                load_directory(ws.specs, kinds, cache=cache)
            except SpecError as error:
                messages.append(str(error))
    finally:
        os.chdir(here)
    assert "specs/broken.yaml:" in messages[0]
    assert messages[1].startswith("broken.yaml:") or "\nbroken.yaml:" in messages[1]
