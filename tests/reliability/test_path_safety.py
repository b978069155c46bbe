"""Path safety (issue 6): nothing reconciler writes, reads for a manifest or deletes leads
outside a taxonomy target's repository or an environment's target directory.

Every case builds the escape for real (links committed in a repository, links in a working
copy, links in a deploy directory, a tampered saved plan), runs the real CLI, and checks
the user-visible refusal and that a directory outside was not touched at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.kinds.environment.releases import Layout, remove_release
from tests.conftest import Workspace
from tests.gitservers import WorkRepo, git, make_bare
from tests.reliability.scale import size


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` (links not followed): content digest, link target, or dir."""
    seen: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        key = path.relative_to(root).as_posix()
        if path.is_symlink():
            seen[key] = "link:" + os.readlink(path)
        elif path.is_dir():
            seen[key] = "dir"
        else:
            seen[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


@pytest.fixture
def outside(ws: Workspace) -> Path:
    """A directory beside the workspace's repositories that nothing may touch: it looks like
    an environment's releases directory, so a path mix-up would find things to delete."""
    root = ws.root / "elsewhere"
    for name in ("1-aaaaaaa", "2-bbbbbbb"):
        (root / "releases" / name).mkdir(parents=True)
        (root / "releases" / name / "precious.txt").write_text(f"{name} must survive\n")
    (root / "precious.txt").write_text("must survive\n")
    return root


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


@pytest.fixture
def app(ws: Workspace) -> WorkRepo:
    """ws/app with tags v1, v2, v3 (plain files)."""
    repo = WorkRepo.create(ws.root / "app")
    for version in ("v1", "v2", "v3"):
        repo.commit(version, {"VERSION": f"{version}\n", "bin/run.txt": "run\n"})
        repo.tag(version)
    return repo


def env_spec(ws: Workspace, ref: str = "v1", extra: str = "") -> None:
    text = (
        "apiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: prod}\nspec:\n"
        f"  source: {{repo: ../app, ref: {ref}}}\n  target: {{path: ../deploy/prod}}\n"
        "  keepReleases: 1\n"
    )
    ws.write_spec("env.yaml", text + "".join(f"  {line}\n" for line in extra.splitlines()))


def clear(path: Path) -> None:
    """Make room for a tampered entry: a link goes, a directory is moved aside."""
    if path.is_symlink():
        path.unlink()
    elif path.exists():
        os.rename(path, path.with_name(path.name + ".moved"))


def tamper_releases(root: Path, outside: Path) -> str:
    clear(root / "releases")
    os.symlink(outside / "releases", root / "releases")
    return "releases is a link to"


def tamper_release_dir(root: Path, outside: Path) -> str:
    (root / "releases").mkdir(exist_ok=True)  # the oldest release: first to be pruned
    os.symlink(outside / "releases" / "1-aaaaaaa", root / "releases" / "0-aaaaaaa")
    return "releases/0-aaaaaaa is a link to"


def tamper_release_relative(root: Path, outside: Path) -> str:
    (root / "releases").mkdir(exist_ok=True)
    os.symlink("../../../elsewhere/releases/2-bbbbbbb", root / "releases" / "0-bbbbbbb")
    return "releases/0-bbbbbbb is a link to ../../../elsewhere"


def tamper_current(root: Path, outside: Path) -> str:
    clear(root / "current")  # a name that looks like a release must not fool anyone
    os.symlink(outside / "releases" / "1-aaaaaaa", root / "current")
    return "current is a link to"


def tamper_manifests(root: Path, outside: Path) -> str:
    clear(root / ".reconciler")
    os.symlink(outside, root / ".reconciler")
    return ".reconciler is a link to"


def tamper_slot(root: Path, outside: Path) -> str:
    clear(root / "blue")
    os.symlink(outside / "releases" / "2-bbbbbbb", root / "blue")
    return "blue is a link to"


def tamper_current_directory(root: Path, outside: Path) -> str:
    clear(root / "current")
    (root / "current").mkdir()
    return "current is not a link"


TAMPERING: dict[str, Callable[[Path, Path], str]] = {
    "releases-link": tamper_releases,
    "release-dir-link": tamper_release_dir,
    "release-dir-relative-link": tamper_release_relative,
    "current-link": tamper_current,
    "manifests-link": tamper_manifests,
    "slot-link": tamper_slot,
    "current-not-a-link": tamper_current_directory,
}


# Short form: every escape into a fresh directory, and into a deployed one (where the next
# deploy would prune) for the escapes pruning could follow; full form: all of them both ways.
CASES = [(case, False) for case in sorted(TAMPERING)] + [
    (case, True)
    for case in sorted(TAMPERING)
    if size(0, 1) or case in ("releases-link", "release-dir-link", "slot-link")
]


@pytest.mark.parametrize(
    ("case", "deployed_first"),
    CASES,
    ids=[f"{case}-{'deployed' if deployed else 'fresh'}" for case, deployed in CASES],
)
def test_an_environment_directory_with_a_link_leading_out_is_refused(
    ws: Workspace, app: WorkRepo, outside: Path, case: str, deployed_first: bool
) -> None:
    root = ws.root / "deploy" / "prod"
    strategy = "strategy: blue-green" if case == "slot-link" else ""
    if deployed_first:  # v1 and v2 deployed; the next deploy would prune (keepReleases 1)
        for ref in ("v1", "v2"):
            env_spec(ws, ref, strategy)
            assert ws.run("apply", "--yes").code == 0
    else:
        root.mkdir(parents=True)
    expected = TAMPERING[case](root, outside)
    before = snapshot(outside)
    env_spec(ws, "v3", strategy)

    plan = ws.run("plan", "--json")
    assert plan.code == 0, plan.output
    (change,) = json.loads(plan.stdout)["changes"]
    assert change["action"] == "blocked", change
    assert "refused to touch" in change["reason"] and expected in change["reason"], change
    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.output
    assert expected in applied.output and "nothing was changed" in applied.output
    assert "Traceback" not in applied.output
    assert snapshot(outside) == before
    if deployed_first:
        back = ws.run("rollback", "Environment/prod")
        assert back.code == 1 and expected in back.output, back.output
        assert snapshot(outside) == before


def test_removing_the_link_lets_the_environment_deploy_again(
    ws: Workspace, app: WorkRepo, outside: Path
) -> None:
    root = ws.root / "deploy" / "prod"
    root.mkdir(parents=True)
    os.symlink(outside / "releases", root / "releases")
    env_spec(ws)
    assert ws.run("apply", "--yes").code == 1
    (root / "releases").unlink()
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert (root / "current" / "VERSION").read_text() == "v1\n"
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_pruning_only_ever_deletes_release_directories_inside_the_target(
    ws: Workspace, app: WorkRepo, outside: Path
) -> None:
    root = ws.root / "deploy" / "prod"
    for ref in ("v1", "v2", "v3"):
        env_spec(ws, ref)
        assert ws.run("apply", "--yes").code == 0
    layout = Layout(root)
    assert len(layout.names()) == 2  # keepReleases 1, plus the previous healthy one
    # A release directory swapped for a link after the fact: removing it removes the link.
    (root / "releases" / "0-ccccccc").symlink_to(outside / "releases" / "1-aaaaaaa")
    before = snapshot(outside)
    remove_release(layout, "0-ccccccc")
    assert not (root / "releases" / "0-ccccccc").is_symlink()
    for bad in ("../../elsewhere/releases/1-aaaaaaa", "..", ".", ""):
        with pytest.raises(ValueError):
            remove_release(layout, bad)
    # The whole releases directory swapped for a link: nothing is deleted through it.
    os.rename(root / "releases", root / "releases.moved")
    os.symlink(outside / "releases", root / "releases")
    with pytest.raises(ValueError, match="leads outside"):
        remove_release(layout, "1-aaaaaaa")
    assert snapshot(outside) == before


def test_a_tampered_saved_plan_cannot_name_a_release_outside(
    ws: Workspace, app: WorkRepo, outside: Path
) -> None:
    env_spec(ws)
    saved = ws.root / "plan.json"
    sha = app.rev("v1^{commit}")
    for release in ("../../../elsewhere/escape", f"../1-{sha[:7]}", f"1-{'0' * 7}"):
        assert ws.run("plan", "--out", str(saved)).code == 0  # a failed apply is a revision
        data = json.loads(saved.read_text())
        for step in data["changes"][0]["steps"]:
            step["release"] = release
        tampered = ws.root / "tampered.json"
        tampered.write_text(json.dumps(data))
        result = ws.run("apply", str(tampered))
        assert result.code == 1, result.output
        assert "release name" in result.output and "refused" in result.output, result.output
    assert not (ws.root / "elsewhere" / "escape").exists()
    assert not (ws.root / "deploy" / "prod" / "current").exists()
    assert ws.run("plan", "--out", str(saved)).code == 0
    assert ws.run("apply", str(saved)).code == 0  # an untouched plan applies


def test_links_in_a_deployed_commit_are_kept_and_never_followed(
    ws: Workspace, app: WorkRepo, outside: Path
) -> None:
    secret = outside / "precious.txt"
    os.symlink(secret, app.path / "abs-link")
    os.symlink("../../../..", app.path / "up-link")
    app.commit("links", {"VERSION": "links\n", "same.txt": "must survive\n"})
    app.tag("links")
    env_spec(ws, "links")
    assert ws.run("apply", "--yes").code == 0
    current = ws.root / "deploy" / "prod" / "current"
    assert os.readlink(current / "abs-link") == str(secret)  # kept as git archive keeps it
    assert os.readlink(current / "up-link") == "../../../.."
    # The file a link points to changes: not the release's business, no drift.
    secret.write_text("changed outside\n")
    assert ws.run("plan", "--detailed-exitcode").code == 0
    # A link retargeted by hand is drift; so is a file replaced by a link to identical
    # bytes (following links would have called it unchanged).
    (current / "up-link").unlink()
    os.symlink("..", current / "up-link")
    (current / "same.txt").unlink()
    os.symlink(outside / "precious.txt", current / "same.txt")
    secret.write_text("must survive\n")
    plan = ws.run("plan", "--json")
    (change,) = json.loads(plan.stdout)["changes"]
    assert "same.txt replaced by a link" in change["reason"], change
    assert "up-link changed" in change["reason"], change
    before = snapshot(outside)
    assert ws.run("apply", "--yes").code == 0
    assert snapshot(outside) == before
    assert ws.run("plan", "--detailed-exitcode").code == 0


# --------------------------------------------------------------------------------------------
# Taxonomy
# --------------------------------------------------------------------------------------------


def taxonomy_spec(ws: Workspace, targets: list[str]) -> None:
    ws.write_spec(
        "taxonomy.yaml",
        "apiVersion: reconciler/v1\nkind: Taxonomy\nmetadata: {name: docs}\nspec:\n"
        "  terms:\n    - {id: infra, label: Infrastructure}\n  targets:\n"
        + "".join(f"    - {t}\n" for t in targets),
    )


def test_a_link_on_the_way_to_a_taxonomy_file_is_refused(ws: Workspace, outside: Path) -> None:
    bare = make_bare(ws.root / "site.git")
    work = WorkRepo.create(ws.root / "work", bare)
    os.symlink(outside, work.path / "docs")  # committed: a directory link
    os.symlink("../..", work.path / "up")
    (work.path / "leaf").mkdir()
    os.symlink(outside / "precious.txt", work.path / "leaf" / "index.json")  # the file itself
    work.commit("links", {"README": "x\n"})
    work.push(bare, "main:main")
    tip = git("rev-parse", "main", cwd=bare).stdout.strip()
    checkout = WorkRepo.create(ws.root / "checkout")  # a working copy reconciler fast-forwards
    checkout.commit("init", {"docs/README": "x\n"})
    os.rename(checkout.path / "docs", ws.root / "docs-moved")
    os.symlink("../elsewhere", checkout.path / "docs")  # not committed: only on disk
    checkout_tip = checkout.rev("HEAD")
    cases = {
        "committed directory link": f"docs is a symbolic link (to {outside}) at",
        "committed relative link": "up is a symbolic link (to ../..) at",
        "committed file link": "leaf/index.json is a symbolic link (to ",
        "working copy link": "docs is a symbolic link (to ../elsewhere) in the working copy",
    }
    taxonomy_spec(
        ws,
        [
            "{repo: ../site.git, path: docs/index.json}",
            "{repo: ../site.git, path: up/index.json}",
            "{repo: ../site.git, path: leaf/index.json}",
            "{repo: ../checkout, path: docs/index.json}",
        ],
    )
    before = snapshot(outside)
    plan = ws.run("plan", "--json")
    assert plan.code == 0, plan.output
    (change,) = json.loads(plan.stdout)["changes"]
    assert change["action"] == "blocked"
    reasons = [s["reason"] for s in change["steps"]]
    assert len(reasons) == len(cases), reasons
    for fragment in cases.values():
        assert any(fragment in r and "through a link" in r for r in reasons), (fragment, reasons)
    applied = ws.run("apply", "--yes")
    assert applied.code == 1 and "Traceback" not in applied.output
    assert snapshot(outside) == before
    assert git("rev-parse", "main", cwd=bare).stdout.strip() == tip
    assert checkout.rev("HEAD") == checkout_tip
    assert os.readlink(checkout.path / "docs") == "../elsewhere"


def test_a_crafted_commit_that_writes_through_its_own_link_is_not_exported(
    ws: Workspace, app: WorkRepo, outside: Path
) -> None:
    """A tree holding both a link `docs -> OUTSIDE` and a directory `docs/` (git fsck calls
    it duplicateEntries; `git mktree` builds it): extraction must not follow the link."""
    for target in (str(outside), "../../../../elsewhere"):
        blob = _hash(app, "escaped\n")
        link_blob = _hash(app, target)
        inner = _mktree(app, f"100644 blob {blob}\tescaped.txt\n")
        top = _mktree(app, f"120000 blob {link_blob}\tdocs\n040000 tree {inner}\tdocs\n")
        commit = app.git("commit-tree", top, "-m", "crafted").stdout.strip()
        app.git("tag", "-f", "crafted", commit)
        env_spec(ws, "crafted")
        before = snapshot(outside)
        result = ws.run("apply", "--yes")
        assert result.code == 1 and "cannot export" in result.output, result.output
        # Refused before tar runs: tar's own refusal depended on its delayed-link bookkeeping
        # (one run in a loaded full suite exported the tree without the link).
        assert "docs is both a file and a directory" in result.output, result.output
        assert "Traceback" not in result.output
        assert snapshot(outside) == before
        assert not (ws.root / "deploy" / "prod" / "current").exists()


def _hash(repo: WorkRepo, content: str) -> str:
    done = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=repo.path,
        input=content,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def _mktree(repo: WorkRepo, listing: str) -> str:
    done = subprocess.run(
        ["git", "mktree"], cwd=repo.path, input=listing, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()
