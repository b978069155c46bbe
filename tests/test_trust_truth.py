"""Issue 12, "says what is true": a dead source, a vanished repository, an unreadable taxonomy
target, a directory that is not a repository, skipped refs and the `init` example, each
through the real CLI on real repositories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import CliResult, Workspace, status_row
from tests.gitservers import WorkRepo, free_port, git, make_bare, refs_of, seed_bare

POLICY = """
---
apiVersion: reconciler/v1
kind: HealthPolicy
metadata: {name: watchdog}
spec:
  selector: {kinds: [Mirror, Taxonomy]}
  checks:
    - {type: syncLag, maxLag: 1h}
    - {type: drift}
  remediation:
    - {escalate: {file: ../alerts.jsonl}}
"""


def mirror(ws: Workspace, source: str, destination: str = "../dest.git", extra: str = "") -> None:
    """specs/mirror.yaml: Mirror/core from `source` to `destination`, with the policy."""
    ws.write_spec(
        "mirror.yaml",
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: core}\nspec:\n"
        f"  source: {{url: {source}}}\n  destinations: [{{url: {destination}}}]\n"
        + "".join(f"  {line}\n" for line in extra.strip().splitlines())
        + POLICY.lstrip("\n"),
    )


def alerts(ws: Workspace) -> list[dict[str, object]]:
    path = ws.root / "alerts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_dead(ws: Workspace, address: str, why: str) -> None:
    """What a user sees for a resource that cannot be brought in sync: never a green."""
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.output
    assert "No changes" not in plan.stdout and why in plan.stdout, plan.stdout
    planned = json.loads(ws.run("plan", "--json").stdout)
    change = next(c for c in planned["changes"] if c["address"] == address)
    assert change["action"] == "blocked" and why in json.dumps(change["steps"])
    row = status_row(ws, address)
    assert row["sync"] in ("OutOfSync", "Unknown") and row["health"] == "Degraded", row
    assert why in row["message"], row
    assert why in " ".join(ws.run("status").stdout.split())  # the table wraps long messages
    health = ws.run("health", "--json")
    assert health.code == 1, health.output
    checked = next(r for r in json.loads(health.stdout)["resources"] if r["address"] == address)
    assert checked["status"] == "Degraded", checked
    by_type = {c["type"]: c["status"] for c in checked["checks"]}
    assert by_type["syncLag"] == "Degraded" and by_type["drift"] == "Degraded", by_type
    once = ws.run("watch", "--once", "--listen", "off")
    assert once.code == 1, once.output
    raised = [a for a in alerts(ws) if a["address"] == address and a["event"] == "incident"]
    assert raised and why in json.dumps(raised[-1]), alerts(ws)
    applied = ws.run("apply", "--yes")
    assert applied.code == 1 and why in applied.output, applied.output


def applied_cleanly(ws: Workspace) -> None:
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert ws.run("plan", "--detailed-exitcode").code == 0


# ---- item 8: a dead source is never "in sync" ----------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "renamed"])
def test_a_source_that_disappears_blocks_the_mirror_everywhere(ws: Workspace, how: str) -> None:
    seed_bare(ws.root / "source.git", branches=("main", "dev"))
    mirror(ws, "../source.git")
    applied_cleanly(ws)
    kept = refs_of(ws.root / "dest.git")
    if how == "deleted":
        shutil.rmtree(ws.root / "source.git")
    else:
        (ws.root / "source.git").rename(ws.root / "source-renamed.git")
    assert_dead(ws, "Mirror/core", "not a git repository")
    assert refs_of(ws.root / "dest.git") == kept  # the backup is left as it was
    if how == "renamed":  # once it is back, all is well again
        (ws.root / "source-renamed.git").rename(ws.root / "source.git")
        applied_cleanly(ws)
        assert status_row(ws, "Mirror/core")["health"] == "Healthy"


def test_an_http_source_nobody_answers_blocks_the_mirror(ws: Workspace) -> None:
    mirror(ws, f"http://127.0.0.1:{free_port()}/source.git")
    assert_dead(ws, "Mirror/core", "cannot list refs")
    assert not (ws.root / "dest.git").exists()


def test_a_repository_gone_from_the_organisation_is_reported_and_its_backup_kept(
    ws: Workspace,
) -> None:
    for name in ("alpha", "beta"):
        seed_bare(ws.root / "org" / f"{name}.git", branches=("main", "dev"))
    mirror(
        ws,
        '"../org/{repo}.git"',
        '"../backup/{repo}.git"',
        extra='repos: ["*"]\nprune: true',
    )
    applied_cleanly(ws)
    kept = refs_of(ws.root / "backup" / "beta.git")
    shutil.rmtree(ws.root / "org" / "beta.git")
    assert_dead(ws, "Mirror/core", "repository beta is missing at the source")
    assert refs_of(ws.root / "backup" / "beta.git") == kept  # never pruned, never deleted
    # The repository that is still there keeps being mirrored meanwhile.
    work = WorkRepo.create(ws.root / "work", ws.root / "org" / "alpha.git")
    tip = work.commit("more", {"more.txt": "more\n"})
    work.push(ws.root / "org" / "alpha.git", "HEAD:refs/heads/main")
    assert ws.run("apply", "--yes").code == 1
    assert refs_of(ws.root / "backup" / "alpha.git")["refs/heads/main"] == tip


def test_a_repository_in_sync_when_first_seen_is_reported_when_it_vanishes(
    ws: Workspace,
) -> None:
    """Backups made before reconciler (already in sync: the first apply pushes nothing) are
    remembered too, so a repository that then leaves the organisation is reported."""
    for name in ("alpha", "beta"):
        seed_bare(ws.root / "org" / f"{name}.git", branches=("main", "dev"))
        make_bare(ws.root / "backup" / f"{name}.git")
        git(
            "push",
            "--quiet",
            "--mirror",
            ws.root / "backup" / f"{name}.git",
            cwd=ws.root / "org" / f"{name}.git",
        )
    mirror(ws, '"../org/{repo}.git"', '"../backup/{repo}.git"', extra='repos: ["*"]')
    first = ws.run("apply", "--yes")
    assert first.code == 0 and "refs updated" not in first.output, first.output
    shutil.rmtree(ws.root / "org" / "beta.git")
    assert_dead(ws, "Mirror/core", "repository beta is missing at the source")


TAXONOMY = """
apiVersion: reconciler/v1
kind: Taxonomy
metadata: {{name: docs}}
spec:
  terms:
    - {{id: infra, label: Infrastructure}}
  targets:
    - {{repo: "{repo}", branch: main, path: taxonomy/index.json}}
"""


def test_a_taxonomy_target_repository_removed_blocks_with_the_reason(ws: Workspace) -> None:
    make_bare(ws.root / "docs.git")
    ws.write_spec("taxonomy.yaml", TAXONOMY.format(repo="../docs.git") + POLICY)
    applied_cleanly(ws)
    shutil.rmtree(ws.root / "docs.git")
    assert_dead(ws, "Taxonomy/docs", "not a git repository")


def test_an_unreachable_taxonomy_target_blocks_with_the_reason(ws: Workspace) -> None:
    url = f"http://127.0.0.1:{free_port()}/docs.git"
    ws.write_spec("taxonomy.yaml", TAXONOMY.format(repo=url) + POLICY)
    assert_dead(ws, "Taxonomy/docs", "cannot list refs")


def test_a_taxonomy_file_that_cannot_be_read_blocks_instead_of_an_internal_error(
    ws: Workspace,
) -> None:
    make_bare(ws.root / "docs.git")
    ws.write_spec("taxonomy.yaml", TAXONOMY.format(repo="../docs.git") + POLICY)
    applied_cleanly(ws)
    (cache,) = (ws.root / "state" / "cache" / "taxonomy").glob("*.git")
    tip = refs_of(ws.root / "docs.git")["refs/heads/main"]
    blob = git("rev-parse", f"{tip}:taxonomy/index.json", cwd=cache).stdout.strip()
    (cache / "objects" / blob[:2] / blob[2:]).unlink()  # the file's object is lost
    assert_dead(ws, "Taxonomy/docs", "cannot read taxonomy/index.json")
    shutil.rmtree(cache)  # as the message says: the next run fetches it again
    applied_cleanly(ws)


# ---- item 11: an existing directory that is not a repository is never turned into one ------


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("kind", ["directory", "file"])
def test_an_existing_path_that_is_not_a_repository_is_refused(ws: Workspace, kind: str) -> None:
    seed_bare(ws.root / "source.git")
    mirror(ws, "../source.git")
    target = ws.root / "dest.git"
    if kind == "directory":
        target.mkdir()
        (target / "config").write_text("my own settings\n")
        (target / "notes").mkdir()
        (target / "notes" / "todo.txt").write_text("keep me\n")
    else:
        target.write_text("not a directory\n")
    before = snapshot(ws.root / "dest.git") if kind == "directory" else target.read_bytes()
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "exists and is not a git repository" in plan.stdout, plan.output
    assert "init" not in json.dumps(json.loads(ws.run("plan", "--json").stdout)["changes"][0])
    applied = ws.run("apply", "--yes")
    assert applied.code == 1 and "exists and is not a git repository" in applied.output
    after = snapshot(ws.root / "dest.git") if kind == "directory" else target.read_bytes()
    assert after == before
    assert status_row(ws, "Mirror/core")["health"] == "Degraded"


def test_an_empty_directory_is_made_the_destination_repository(ws: Workspace) -> None:
    refs = seed_bare(ws.root / "source.git", branches=("main", "dev"))
    mirror(ws, "../source.git")
    (ws.root / "dest.git").mkdir()
    applied_cleanly(ws)
    assert refs_of(ws.root / "dest.git") == refs


@pytest.mark.parametrize("left", [("description", "hooks/", "info/"), ("refs/", "HEAD")])
def test_what_a_killed_git_init_left_is_still_completed(ws: Workspace, left: tuple[str]) -> None:
    refs = seed_bare(ws.root / "source.git")
    mirror(ws, "../source.git")
    for name in left:
        path = ws.root / "dest.git" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir() if name.endswith("/") else path.write_text("ref: refs/heads/main\n")
    applied_cleanly(ws)
    assert refs_of(ws.root / "dest.git") == refs


def test_an_organisation_with_no_repository_is_not_in_sync(ws: Workspace) -> None:
    (ws.root / "org").mkdir()
    mirror(ws, '"../org/{repo}.git"', '"../backup/{repo}.git"', extra='repos: ["*"]')
    assert_dead(ws, "Mirror/core", "no repository found at the source")


# ---- item 20: skip is not "Synced" ---------------------------------------------------------


def test_refs_left_by_skip_are_out_of_sync_and_named(ws: Workspace) -> None:
    branches = [f"b{i}" for i in range(6)]
    seed_bare(ws.root / "source.git", branches=("main", *branches))
    mirror(ws, "../source.git", extra="conflictStrategy: skip")
    applied_cleanly(ws)
    downstream = WorkRepo.create(ws.root / "downstream", ws.root / "dest.git")
    for branch in branches:
        downstream.git("checkout", "-q", "-B", branch, f"origin/{branch}")
        downstream.commit(f"downstream only on {branch}", {"local.txt": branch})
        downstream.push(ws.root / "dest.git", f"{branch}:{branch}", force=True)

    row = status_row(ws, "Mirror/core")
    assert (row["sync"], row["health"]) == ("OutOfSync", "Healthy"), row
    assert "6 diverged refs" in row["message"] and "conflictStrategy skip" in row["message"]
    for branch in branches[:5]:
        assert f"refs/heads/{branch}" in row["message"], row
    text = ws.run("status").stdout
    assert "OutOfSync" in text and "Healthy" in text and "Synced" not in text.split("\n")[1]
    # Skipping is what the spec asks for: the plan has nothing to do and health stays green.
    assert ws.run("plan", "--detailed-exitcode").code == 0
    health = json.loads(ws.run("health", "--json").stdout)
    assert health["resources"][0]["status"] == "Healthy"


# ---- item 24: `init` writes an example that tells the truth --------------------------------


def test_init_then_plan_works_where_it_is_written(ws: Workspace) -> None:
    shutil.rmtree(ws.specs)
    made = ws.run("init")
    assert made.code == 0, made.output
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.output  # something true to do: create the backups
    assert "blocked" not in plan.stdout.split("Plan:")[0] and "0 blocked" in plan.stdout
    applied_cleanly(ws)
    sources = ws.specs / "demo" / "source"
    backups = ws.specs / "demo" / "backup"
    for name in ("vision-cortex", "auto-builder"):
        mirrored = refs_of(backups / f"{name}.git")
        assert mirrored == {
            r: s for r, s in refs_of(sources / f"{name}.git").items() if "feature" not in r
        }
        assert set(mirrored) == {"refs/heads/main", "refs/heads/release/1.0", "refs/tags/v1.0.0"}
    assert status_row(ws, "Mirror/core-repos")["health"] == "Healthy"
    again = ws.run("init")
    assert again.code == 1 and "already exists" in again.stderr


def test_init_into_another_directory_says_how_to_plan_it(ws: Workspace) -> None:
    made: CliResult = ws.run("init", "elsewhere")
    assert made.code == 0 and "--specs elsewhere plan" in made.stdout, made.output
    assert ws.run("--specs", "elsewhere", "apply", "--yes").code == 0
    assert ws.run("--specs", "elsewhere", "plan", "--detailed-exitcode").code == 0
    (ws.root / "other").mkdir()
    (ws.root / "other" / "demo").mkdir()  # something of the user's is in the way: kept
    refused = ws.run("init", "other")
    assert refused.code == 1 and "other/demo already exists" in refused.stderr
    assert not (ws.root / "other" / "mirrors.yaml").exists()
    assert list((ws.root / "other" / "demo").iterdir()) == []
