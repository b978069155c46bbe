"""The deploy's fast path (issue 14): release manifests hold git's blob ids (from `ls-tree`,
not from hashing the export) and the lstat data seen, and drift hashes only the files that
look changed; drift is detected as before, and manifests of the previous format still read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Workspace, ok
from tests.gitservers import WorkRepo

PY = sys.executable
FILES = {
    "VERSION": "v1\n",
    "pkg/a.py": "A = 1\n",
    "pkg/b.py": "B = 2\n",
    "pkg/deep/c.txt": "see\n",
}


@pytest.fixture
def app(ws: Workspace) -> WorkRepo:
    """ws/app: tag v1 with a few files in directories and a symbolic link."""
    repo = WorkRepo.create(ws.root / "app")
    (repo.path / "pkg").mkdir()
    os.symlink("a.py", repo.path / "pkg" / "alias.py")
    repo.commit("v1", FILES)
    repo.tag("v1")
    return repo


def spec(ws: Workspace, ref: str = "v1", extra: str = "") -> None:
    ws.write_spec(
        "env.yaml",
        "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: staging}\nspec:\n"
        f"  source: {{repo: ../app, ref: {ref}}}\n  target: {{path: ../deploy}}\n{extra}",
    )


def release(ws: Workspace) -> Path:
    return Path(os.path.realpath(ws.root / "deploy" / "current"))


def manifest(ws: Workspace) -> dict[str, Any]:
    data = json.loads((ws.root / "deploy" / ".reconciler" / f"{release(ws).name}.json").read_text())
    assert isinstance(data, dict)
    return data


def ls_tree(repo: WorkRepo, ref: str) -> dict[str, str]:
    """{path: id} as a manifest writes it, from `git ls-tree -r` (links: `link:<blob>`)."""
    listing = repo.git("ls-tree", "-r", "-z", ref).stdout
    found = {}
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        mode, _kind, sha = meta.split()
        found[path] = ("link:" if mode == "120000" else "") + sha
    return found


def plan(ws: Workspace) -> tuple[int, str]:
    result = ws.run("plan", "--detailed-exitcode")
    assert "Traceback" not in result.output, result.output
    return result.code, result.stdout


def test_the_manifest_holds_gits_blob_ids_and_the_lstat_data(ws: Workspace, app: WorkRepo) -> None:
    spec(ws)
    ok(ws.run("apply", "--yes"))
    data = manifest(ws)
    assert data["files"] == ls_tree(app, "v1")
    assert data["files"]["pkg/alias.py"].startswith("link:")
    assert isinstance(data["stamp"], int)
    assert set(data["seen"]) == set(data["files"])
    info = os.lstat(release(ws) / "pkg" / "a.py")
    seen = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
    assert data["seen"]["pkg/a.py"] == seen
    assert plan(ws)[0] == 0


def test_an_edit_that_keeps_size_and_mtime_is_still_drift(ws: Workspace, app: WorkRepo) -> None:
    spec(ws)
    ok(ws.run("apply", "--yes"))
    path = release(ws) / "pkg" / "a.py"
    before = os.lstat(path)
    path.write_text("A = 9\n")  # same size, written in place (same inode)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back by hand
    after = os.lstat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    code, out = plan(ws)
    assert code == 2 and "altered by hand: pkg/a.py changed" in out


def test_an_edit_right_after_the_deploy_is_drift(ws: Workspace, app: WorkRepo) -> None:
    """Every file edited in place at its own size, at once after the deploy."""
    spec(ws)
    ok(ws.run("apply", "--yes"))
    for name in FILES:
        (release(ws) / name).write_text((release(ws) / name).read_text()[::-1])  # same size
    code, out = plan(ws)
    assert code == 2 and "VERSION changed" in out and "pkg/a.py changed" in out


def test_links_removals_and_a_directory_swapped_for_a_link_are_drift(
    ws: Workspace, app: WorkRepo
) -> None:
    spec(ws)
    ok(ws.run("apply", "--yes"))
    root = release(ws)
    (root / "VERSION").unlink()
    os.symlink("pkg/b.py", root / "VERSION.tmp")
    os.replace(root / "VERSION.tmp", root / "VERSION")
    (root / "pkg" / "b.py").unlink()
    # The same files, same inodes and ctimes, reached through a link on the way.
    shutil.move(root / "pkg" / "deep", ws.root / "elsewhere")
    os.symlink(ws.root / "elsewhere", root / "pkg" / "deep")
    code, out = plan(ws)
    assert code == 2
    assert "VERSION replaced by a link" in out
    assert "pkg/b.py removed" in out
    assert "pkg/deep/c.txt replaced by a link" in out


def test_a_chmod_is_not_drift_as_before(ws: Workspace, app: WorkRepo) -> None:
    spec(ws)
    ok(ws.run("apply", "--yes"))
    os.chmod(release(ws) / "pkg" / "a.py", 0o755)
    assert plan(ws)[0] == 0


def test_files_build_rewrites_are_hashed_not_taken_from_git(ws: Workspace, app: WorkRepo) -> None:
    write = "open('VERSION', 'w').write('v9' + chr(10)); open('new.txt', 'w').write('x')"
    spec(ws, extra=f'  build: [{{run: ["{PY}", "-c", "{write}"]}}]\n')
    ok(ws.run("apply", "--yes"))
    assert (release(ws) / "VERSION").read_text() == "v9\n"  # same size as git's "v1\n"
    data = manifest(ws)
    hashed = subprocess.run(
        ["git", "hash-object", "--no-filters", release(ws) / "VERSION"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert data["files"]["VERSION"] == hashed != ls_tree(app, "v1")["VERSION"]
    assert plan(ws)[0] == 0  # what build made is the release as deployed


def test_files_gitattributes_rewrite_are_hashed(ws: Workspace, app: WorkRepo) -> None:
    app.commit("v2", {".gitattributes": "VERSION export-subst\n", "VERSION": "$Format:%H$\n"})
    app.tag("v2")
    spec(ws, ref="v2")
    ok(ws.run("apply", "--yes"))
    assert (release(ws) / "VERSION").read_text() == app.rev("v2") + "\n"
    assert manifest(ws)["files"]["VERSION"] != ls_tree(app, "v2")["VERSION"]
    assert plan(ws)[0] == 0


def test_a_release_with_a_manifest_of_the_previous_format_still_reads(
    ws: Workspace, app: WorkRepo
) -> None:
    """Manifests before issue 14 had no `seen` nor `stamp`: drift hashes every file."""
    spec(ws)
    ok(ws.run("apply", "--yes"))
    path = ws.root / "deploy" / ".reconciler" / f"{release(ws).name}.json"
    data = manifest(ws)
    old = {"sha": data["sha"], "ref": data["ref"], "files": data["files"]}
    path.write_text(json.dumps(old, sort_keys=True))
    assert plan(ws)[0] == 0  # a release made by the previous version stays valid
    (release(ws) / "pkg" / "b.py").write_text("B = 3\n")
    code, out = plan(ws)
    assert code == 2 and "altered by hand: pkg/b.py changed" in out
