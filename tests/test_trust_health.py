"""Issue 12, items 8, 9, 20 and 21 once more: false greens a review still found through the
CLI. An environment waiting on `requires` under a syncLag check, a failed release hidden by
that wait, a `current` link to a deleted release, repository names discovery found but the
rest of reconciler did not recognise, and a plan that said everything matched while skip
left refs behind. Real repositories, real hooks, the real CLI."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import Workspace, status_row
from tests.gitservers import WorkRepo, refs_of, seed_bare
from tests.test_trust_environment import CHECK, assert_converged, environment
from tests.test_trust_truth import alerts, applied_cleanly, mirror


@pytest.fixture
def app(ws: Workspace) -> Iterator[WorkRepo]:
    """ws/app: tags v1 and v2 whose check.py passes, v3 whose check.py fails."""
    repo = WorkRepo.create(ws.root / "app")
    for version, code in (("v1", 0), ("v2", 0), ("v3", 1)):
        repo.commit(version, {"check.py": f"import sys; sys.exit({code})\n", "VERSION": version})
        repo.tag(version)
    yield repo


def policy(ws: Workspace) -> None:
    """A syncLag check over every Environment, alerting into ws/alerts.jsonl."""
    ws.write_spec(
        "policy.yaml",
        """
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: deploys}
        spec:
          selector: {kinds: [Environment]}
          checks: [{type: syncLag, maxLag: 2h}]
          remediation: [{escalate: {file: ../alerts.jsonl}}]
        """,
    )


def health_of(ws: Workspace, address: str) -> dict[str, object]:
    """`health --json`'s row for `address`."""
    report = json.loads(ws.run("health", "--json").stdout)
    return next(r for r in report["resources"] if r["address"] == address)


def checks_of(row: dict[str, object]) -> dict[str, str]:
    checks = row["checks"]
    assert isinstance(checks, list)
    return {c["type"]: c["status"] for c in checks}


# -- 21: waiting on `requires` is Progressing in every check -------------------------------


def test_waiting_on_requires_is_progressing_under_sync_lag_and_raises_no_incident(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, name="staging", ref="v1")
    environment(ws, name="production", ref="v1", extra="requires: [staging]")
    policy(ws)
    assert_converged(ws, ws.run("apply", "--yes"))
    # staging's v3 fails its verify (rolled back to v1); production waits for it.
    environment(ws, name="staging", ref="v3", extra=CHECK)
    environment(ws, name="production", ref="v3", extra="requires: [staging]")
    assert ws.run("apply", "--yes").code == 1
    row = status_row(ws, "Environment/production")
    assert row["health"] == "Progressing" and "requires staging on v3" in row["message"], row
    production = health_of(ws, "Environment/production")
    assert production["status"] == "Progressing", production
    assert checks_of(production)["syncLag"] == "Progressing", production
    ws.run("heal")
    raised = {a["address"] for a in alerts(ws) if a["event"] == "incident"}
    assert raised == {"Environment/staging"}, alerts(ws)  # staging failed; production waits


# -- 9 and 21: waiting does not hide a current release that failed -------------------------


def test_waiting_on_requires_does_not_hide_a_current_release_that_failed(
    ws: Workspace, app: WorkRepo
) -> None:
    # production's first release fails verify and stays current (autoRollback off) ...
    environment(ws, name="production", ref="v3", extra=f"{CHECK}\nautoRollback: false")
    assert ws.run("apply", "--yes").code == 1
    # ... then the spec moves it on, behind a staging that fails too.
    environment(ws, name="staging", ref="v3", extra=CHECK)
    environment(
        ws, name="production", ref="v2", extra=f"{CHECK}\nautoRollback: false\nrequires: [staging]"
    )
    policy(ws)
    assert ws.run("apply", "--yes").code == 1
    row = status_row(ws, "Environment/production")
    assert row["health"] == "Degraded", row
    assert "requires staging on v2" in row["message"] and "failed verify" in row["message"], row
    production = health_of(ws, "Environment/production")
    assert production["status"] == "Degraded", production
    ws.run("heal")
    assert "Environment/production" in {a["address"] for a in alerts(ws)}, alerts(ws)
    # Once staging runs v2, production deploys it and is healthy again.
    environment(ws, name="staging", ref="v2", extra=CHECK)
    assert_converged(ws, ws.run("apply", "--yes"))
    assert status_row(ws, "Environment/production")["health"] == "Healthy"


# -- 8: `current` pointing to a release that is gone ---------------------------------------


def test_a_current_link_to_a_deleted_release_is_degraded_until_deployed_again(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, name="production", ref="v1")
    policy(ws)
    assert_converged(ws, ws.run("apply", "--yes"))
    release = f"1-{app.rev('v1')[:7]}"
    shutil.rmtree(ws.root / "deploy" / "production" / "releases" / release)
    row = status_row(ws, "Environment/production")
    assert row["sync"] == "OutOfSync" and row["health"] == "Degraded", row
    assert f"`current` points to {release}, which is gone" in row["message"], row
    production = health_of(ws, "Environment/production")
    assert production["status"] == "Degraded", production
    assert "which is gone" in str(production["message"]), production
    assert_converged(ws, ws.run("apply", "--yes"))  # a new release repairs it
    assert status_row(ws, "Environment/production")["health"] == "Healthy"


# -- 8: one definition of a repository name, for discovery and everything after it ---------


def org_mirror(ws: Workspace) -> None:
    mirror(ws, '"../org/{repo}.git"', '"../backup/{repo}.git"', extra='repos: ["*"]')


def test_discovered_names_are_mirrored_or_left_out_and_a_vanished_one_is_reported(
    ws: Workspace,
) -> None:
    for name in ("alpha", "c++", "-u"):
        seed_bare(ws.root / "org" / f"{name}.git", branches=("main",))
    org_mirror(ws)
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.output
    assert "-u.git" in plan.stdout and "not a usable repository name" in plan.stdout
    applied = ws.run("apply", "--yes")
    assert applied.code == 1 and "not a usable repository name" in applied.output
    backup = ws.root / "backup"
    assert sorted(p.name for p in backup.iterdir()) == ["alpha.git", "c++.git"]  # never -u
    assert refs_of(backup / "c++.git") == refs_of(ws.root / "org" / "c++.git")
    assert status_row(ws, "Mirror/core")["health"] == "Degraded"
    # The name nobody can use is renamed away; c++ then vanishes from the organisation.
    shutil.rmtree(ws.root / "org" / "-u.git")
    assert ws.run("plan", "--detailed-exitcode").code == 0
    shutil.rmtree(ws.root / "org" / "c++.git")
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "repository c++ is missing at the source" in plan.stdout, plan.output
    row = status_row(ws, "Mirror/core")
    assert row["sync"] != "Synced" and row["health"] == "Degraded", row
    assert "c++" in row["message"], row
    assert refs_of(backup / "c++.git")  # kept as it was


def test_a_saved_plan_of_a_discovered_name_is_applied_not_refused(ws: Workspace) -> None:
    seed_bare(ws.root / "org" / "c++.git", branches=("main", "dev"))
    org_mirror(ws)
    assert ws.run("plan", "--out", "p.json").code == 0
    applied = ws.run("apply", "p.json")
    assert applied.code == 0 and "refused" not in applied.output, applied.output
    assert ws.run("plan", "--detailed-exitcode").code == 0
    assert refs_of(ws.root / "backup" / "c++.git") == refs_of(ws.root / "org" / "c++.git")


# -- 20: the plan's words agree with status on skip ----------------------------------------


def test_a_plan_with_skipped_refs_does_not_say_everything_matches(ws: Workspace) -> None:
    seed_bare(ws.root / "source.git", branches=("main", "dev"))
    mirror(ws, "../source.git", extra="conflictStrategy: skip")
    applied_cleanly(ws)
    downstream = WorkRepo.create(ws.root / "downstream", ws.root / "dest.git")
    downstream.git("checkout", "-q", "-B", "dev", "origin/dev")
    downstream.commit("downstream only", {"local.txt": "x"})
    downstream.push(ws.root / "dest.git", "dev:dev", force=True)

    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output  # skipping is what the spec asks
    assert "resources match their specs" not in plan.stdout, plan.stdout
    assert (
        "No changes. 1 resource matches its spec; 1 leaves refs as conflictStrategy skip asks "
        "(see status)." in plan.stdout
    ), plan.stdout
    assert status_row(ws, "Mirror/core")["sync"] == "OutOfSync"
