"""Issue 12, items 2 and 19: a saved plan is data, not code; the plan counts blocked resources.

A plan is saved with `plan --out`, edited the way an attacker (or a slip of the hand)
would, and handed to `apply PLANFILE`: it must be refused naming the change, the step and
the field, with nothing run, the world and the store unchanged. An honest saved plan of
every kind still applies, and the next plan is then empty.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.kinds.base.steps import ref_format_problem
from reconciler.kinds.mirror.model import MirrorSpec
from reconciler.kinds.mirror.observed import (
    DestinationObserved,
    MirrorObserved,
    RepoObserved,
    filtered,
)
from reconciler.kinds.mirror.planning import plan_mirror
from reconciler.kinds.mirror.steps import STEP_MODELS
from tests.conftest import Workspace
from tests.gitservers import WorkRepo, refs_of, seed_bare

PY = sys.executable
Tamper = Callable[[dict[str, Any], Path], None]


def mirror_spec(ws: Workspace, strategy: str = "fail") -> None:
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: core}}
        spec:
          source: {{url: ../source.git}}
          destinations: [{{url: ../dest.git}}]
          conflictStrategy: {strategy}
        """,
    )


def env_spec(ws: Workspace, ref: str = "v1", strategy: str = "rolling") -> None:
    hook = f'[{{run: ["{PY}", "-c", "open(\'hooked\', \'w\')"]}}]'
    ws.write_spec(
        "env.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: staging}}
        spec:
          source: {{repo: ../app, ref: {ref}}}
          target: {{path: ../deploy/staging}}
          strategy: {strategy}
          build: {hook}
          activate: {hook}
          verify: [{{run: ["{PY}", "-c", "pass"]}}]
          keepReleases: 1
        """,
    )


def taxonomy_spec(ws: Workspace, label: str = "Infrastructure") -> None:
    ws.write_spec(
        "taxonomy.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Taxonomy
        metadata: {{name: docs}}
        spec:
          terms:
            - {{id: infra, label: {label}}}
            - {{id: infra.ci, label: CI, parent: infra}}
          targets:
            - {{repo: ../site.git, branch: main, path: taxonomy/index.json}}
        """,
    )


def policy_spec(ws: Workspace) -> None:
    ws.write_spec(
        "policy.yaml",
        """
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: watch-mirrors}
        spec:
          selector: {kinds: [Mirror]}
          checks: [{type: drift}]
        """,
    )


def app_repo(ws: Workspace) -> WorkRepo:
    repo = WorkRepo.create(ws.root / "app")
    repo.commit("v1", {"VERSION": "v1\n"})
    repo.tag("v1")
    return repo


def serial(ws: Workspace) -> int:
    with sqlite3.connect(ws.state) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()[0])


def saved_plan(ws: Workspace) -> dict[str, Any]:
    result = ws.run("plan", "--out", "plan.json")
    assert result.code == 0, result.output
    return dict(json.loads((ws.root / "plan.json").read_text()))


def change_of(plan: dict[str, Any], address: str) -> dict[str, Any]:
    return next(c for c in plan["changes"] if c["address"] == address)


def apply_tampered(ws: Workspace, plan: dict[str, Any]) -> str:
    """Apply the edited plan; it must be refused with the store unchanged. Its stderr."""
    (ws.root / "plan.json").write_text(json.dumps(plan))
    before = serial(ws)
    result = ws.run("apply", "plan.json")
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert "refused, nothing was applied" in result.stderr, result.output
    assert serial(ws) == before
    return result.stderr


@pytest.fixture
def mirrored(ws: Workspace) -> WorkRepo:
    """ws/source.git mirrored once to ws/dest.git, then main advanced at the source."""
    seed_bare(ws.root / "source.git", branches=("main", "dev"), tags=("v1",))
    mirror_spec(ws)
    assert ws.run("apply", "--yes").code == 0
    work = WorkRepo.create(ws.root / "work", ws.root / "source.git")
    work.commit("two")
    work.push(ws.root / "source.git", "main:main")
    return work


def _set(name: str, value: Any) -> Tamper:
    def tamper(step: dict[str, Any], marker: Path) -> None:
        step[name] = value.replace("MARKER", str(marker)) if isinstance(value, str) else value

    return tamper


MIRROR_TAMPERING: dict[str, tuple[Tamper, str]] = {
    "to-receive-pack": (_set("to", "--receive-pack=touch MARKER #"), "steps[0].to: not a commit"),
    "to-upload-pack": (_set("to", "--upload-pack=touch MARKER"), "steps[0].to: not a commit"),
    "from-option": (_set("from", "-oProxyCommand=touch MARKER"), "steps[0].from: not a commit"),
    "to-short-sha": (_set("to", "abc1234"), "steps[0].to: not a commit sha"),
    "to-number": (_set("to", 1234), "steps[0].to: Input should be a valid string"),
    "ref-dotdot": (_set("ref", "refs/heads/../x"), "steps[0].ref: not a valid ref name"),
    "ref-dash": (_set("ref", "--exec=touch MARKER"), "steps[0].ref: not a valid ref name"),
    # Fields of the right shape naming something else: unlike a plan made now.
    "ref-outside-filters": (
        _set("ref", "refs/notes/x"),
        "steps[0].ref is 'refs/notes/x', a plan made now says 'refs/heads/main'",
    ),
    "unit-elsewhere": (_set("unit", "/tmp/elsewhere.git"), "steps[0].unit is '/tmp/elsewhere.git'"),
    "repo-escape": (_set("repo", "../../x"), "steps[0].repo is '../../x', a plan made now says"),
    "unknown-op": (_set("op", "exec"), "steps[0].op: unknown op 'exec' for a Mirror"),
    "unknown-field": (_set("run", ["touch", "MARKER"]), "steps[0].run: Extra inputs"),
    "no-reason": (lambda step, _: step.pop("reason"), "steps[0].reason: Field required"),
}


@pytest.mark.parametrize("case", sorted(MIRROR_TAMPERING))
def test_a_tampered_mirror_step_is_refused_naming_its_field_and_nothing_runs(
    ws: Workspace, mirrored: WorkRepo, case: str
) -> None:
    tamper, expected = MIRROR_TAMPERING[case]
    marker = ws.root / "marker"
    plan = saved_plan(ws)
    steps = change_of(plan, "Mirror/core")["steps"]
    assert steps[0]["op"] == "fast-forward"
    tamper(steps[0], marker)
    before = refs_of(ws.root / "dest.git")
    stderr = apply_tampered(ws, plan)
    assert f"changes[0] ('Mirror/core'): {expected}" in stderr
    assert not marker.exists()
    assert not list(ws.root.glob("marker*")) and not list(ws.root.glob("*/marker*"))
    assert refs_of(ws.root / "dest.git") == before


def test_a_to_read_as_an_option_never_reaches_git(ws: Workspace) -> None:
    # A first mirror: no object cache yet, so nothing looks at `to` before `git push`.
    seed_bare(ws.root / "source.git", branches=("main", "dev"))
    mirror_spec(ws)
    assert ws.run("plan").code == 0  # creates the store, as a first apply would
    plan = saved_plan(ws)
    steps = change_of(plan, "Mirror/core")["steps"]
    assert [s["op"] for s in steps] == ["init", "create", "create"]
    marker = ws.root / "marker"
    steps[1]["to"] = f"--receive-pack=touch {marker} #"
    stderr = apply_tampered(ws, plan)
    assert "changes[0] ('Mirror/core'): steps[1].to: not a commit sha" in stderr
    assert not marker.exists()
    assert not (ws.root / "dest.git").exists()


def test_a_tampered_change_is_refused(ws: Workspace, mirrored: WorkRepo) -> None:
    plan = saved_plan(ws)
    forgotten = dict(change_of(plan, "Mirror/core"), action="delete")
    plan["changes"] = [forgotten]
    stderr = apply_tampered(ws, plan)
    assert "changes[0] ('Mirror/core'): action is 'delete', a plan made now says 'update'" in stderr

    plan = saved_plan(ws)
    change_of(plan, "Mirror/core")["action"] = "noop"  # would skip the observation check
    assert "action is 'noop', a plan made now says 'update'" in apply_tampered(ws, plan)

    plan = saved_plan(ws)
    change_of(plan, "Mirror/core").update(address="Mirror/other", name="other")
    stderr = apply_tampered(ws, plan)
    assert "changes[0] ('Mirror/other'): a plan made now has no change of it" in stderr
    assert "'Mirror/core': missing from the saved plan, a plan made now has it" in stderr

    plan = saved_plan(ws)
    plan["changes"] = []  # a change left out is refused too
    assert "'Mirror/core': missing from the saved plan" in apply_tampered(ws, plan)

    plan = saved_plan(ws)
    plan["changes"][0]["steps"][0] = "rm -rf /"
    stderr = apply_tampered(ws, plan)
    assert "not a readable saved plan: changes[0].steps[0]: Input should be a valid dict" in stderr
    assert refs_of(ws.root / "dest.git")["refs/heads/main"] != mirrored.rev("main")


ENV_TAMPERING: dict[str, tuple[Tamper, str]] = {
    "release-escape": (_set("release", "../../etc"), "release name '../../etc' is not"),
    "release-other-sha": (_set("release", "9-0000000"), "release name '9-0000000' is not"),
    "sha-option": (_set("sha", "--upload-pack=touch MARKER"), ".sha: not a commit sha"),
    "unit-elsewhere": (_set("unit", "/tmp/elsewhere"), ".unit is '/tmp/elsewhere', a plan made"),
    "ref-other": (_set("ref", "main"), ".ref is 'main', a plan made now says 'v1'"),
    "slot-other": (_set("slot", "../x"), ".slot: Input should be 'blue' or 'green'"),
}


@pytest.mark.parametrize("case", sorted(ENV_TAMPERING))
def test_a_tampered_environment_step_is_refused_and_nothing_is_deployed(
    ws: Workspace, case: str
) -> None:
    app_repo(ws)
    env_spec(ws, strategy="blue-green")
    assert ws.run("plan").code == 0  # creates the store, as a first apply would
    plan = saved_plan(ws)
    tamper, expected = ENV_TAMPERING[case]
    for step in change_of(plan, "Environment/staging")["steps"]:
        tamper(step, ws.root / "marker")
    stderr = apply_tampered(ws, plan)
    assert "changes[0] ('Environment/staging'): steps[0]" in stderr
    assert expected in stderr
    assert not (ws.root / "deploy").exists()
    assert not (ws.root / "marker").exists()


TAXONOMY_TAMPERING: dict[str, tuple[Tamper, str]] = {
    "from-option": (_set("from", "--upload-pack=touch MARKER"), "steps[0].from: not a commit"),
    "unit-path-escape": (
        lambda step, _: step.update(unit=step["unit"].replace(":taxonomy/", ":../../")),
        "steps[0].unit is ",
    ),
    "digest-word": (_set("digest", "whatever"), "steps[0].digest: not a sha256 digest"),
    "base-string": (_set("base", "1"), "steps[0].base: Input should be a valid integer"),
}


@pytest.mark.parametrize("case", sorted(TAXONOMY_TAMPERING))
def test_a_tampered_taxonomy_step_is_refused_and_nothing_is_committed(
    ws: Workspace, case: str
) -> None:
    seed_bare(ws.root / "site.git")
    taxonomy_spec(ws)
    assert ws.run("plan").code == 0
    plan = saved_plan(ws)
    tamper, expected = TAXONOMY_TAMPERING[case]
    tamper(change_of(plan, "Taxonomy/docs")["steps"][0], ws.root / "marker")
    before = refs_of(ws.root / "site.git")
    stderr = apply_tampered(ws, plan)
    assert f"changes[0] ('Taxonomy/docs'): {expected}" in stderr
    assert refs_of(ws.root / "site.git") == before
    assert not (ws.root / "marker").exists()


def test_a_step_added_to_a_health_policy_is_refused(ws: Workspace, mirrored: WorkRepo) -> None:
    policy_spec(ws)
    plan = saved_plan(ws)
    policy = change_of(plan, "HealthPolicy/watch-mirrors")
    policy["steps"] = [{"op": "exec", "unit": "x", "reason": "r"}]
    stderr = apply_tampered(ws, plan)
    assert "('HealthPolicy/watch-mirrors'): steps[0].op: unknown op 'exec'" in stderr
    assert "(known: none)" in stderr


def test_honest_saved_plans_of_every_kind_apply_and_the_next_plan_is_empty(
    ws: Workspace,
) -> None:
    seed_bare(ws.root / "source.git", branches=("main", "dev"), tags=("v1",))
    mirror_spec(ws, strategy="force")
    app = app_repo(ws)
    env_spec(ws, strategy="blue-green")
    seed_bare(ws.root / "site.git")
    taxonomy_spec(ws)
    policy_spec(ws)
    assert ws.run("plan").code == 0

    def apply_saved() -> None:
        plan = saved_plan(ws)
        result = ws.run("apply", "plan.json")
        assert result.code == 0, result.output
        again = ws.run("plan", "--detailed-exitcode")
        assert again.code == 0, again.output
        assert plan["changes"]

    apply_saved()  # init, create, fetch, export, build, preview, switch, activate, verify, write
    assert refs_of(ws.root / "dest.git") == refs_of(ws.root / "source.git")
    assert (ws.root / "deploy" / "staging" / "current").exists()

    work = WorkRepo.create(ws.root / "work", ws.root / "source.git")
    work.commit("two")
    work.push(ws.root / "source.git", "main:main")  # fast-forward
    work.branch("dev", "main")
    work.commit("rewritten dev")
    work.push(ws.root / "source.git", "dev:dev", force=True)  # force-update
    app.commit("v2", {"VERSION": "v2\n"})
    app.tag("v2")
    env_spec(ws, ref="v2", strategy="blue-green")  # a second release: prune
    taxonomy_spec(ws, label="Infra")  # update
    apply_saved()
    assert refs_of(ws.root / "dest.git") == refs_of(ws.root / "source.git")

    (ws.specs / "policy.yaml").unlink()  # the engine's forget
    apply_saved()

    (ws.root / "app").rename(ws.root / "app.moved")  # a blocked note: shown, not refused
    plan = saved_plan(ws)
    assert change_of(plan, "Environment/staging")["action"] == "blocked"
    blocked = ws.run("apply", "plan.json")
    assert blocked.code == 1 and "blocked Environment/staging" in blocked.stdout, blocked.output
    assert "refused" not in blocked.output
    # The note the engine writes for a resource it could not observe (no unit) has a valid
    # shape, but it is not what a plan made now says.
    plan = saved_plan(ws)
    change_of(plan, "Environment/staging")["steps"] = [{"op": "blocked", "reason": "cannot"}]
    assert "steps[0].unit is absent, a plan made now says" in apply_tampered(ws, plan)


def test_the_plan_summary_counts_a_resource_with_a_blocked_ref_as_blocked(
    ws: Workspace, mirrored: WorkRepo
) -> None:
    # main advanced at the source (an update); dev diverged at the destination (blocked)
    other = WorkRepo.create(ws.root / "other", ws.root / "dest.git")
    other.git("checkout", "-q", "-B", "dev", "origin/dev")
    other.commit("downstream only", {"local.txt": "x\n"})
    other.push(ws.root / "dest.git", "dev:dev", force=True)

    text = ws.run("plan")
    assert text.code == 0, text.output
    assert "1 to update, 0 to delete, 0 unchanged, 1 blocked." in text.stdout, text.stdout
    data = json.loads(ws.run("plan", "--json").stdout)
    assert data["summary"]["blocked"] == 1 and data["summary"]["update"] == 1
    assert ws.run("plan", "--detailed-exitcode").code == 2
    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.output
    assert "1 actions done, 0 failed, 1 blocked." in applied.stdout, applied.stdout
    assert "blocked Mirror/core: refs/heads/dev" in applied.stdout or "blocked" in applied.stdout


def test_apply_counts_blocked_resources_as_the_plan_does(ws: Workspace) -> None:
    seed_bare(ws.root / "source.git", branches=("main", "dev", "topic"))
    mirror_spec(ws)
    assert ws.run("apply", "--yes").code == 0
    for branch in ("dev", "topic"):  # two refs blocked in one resource
        other = WorkRepo.create(ws.root / f"other-{branch}", ws.root / "dest.git")
        other.git("checkout", "-q", "-B", branch, f"origin/{branch}")
        other.commit("downstream only", {"local.txt": "x\n"})
        other.push(ws.root / "dest.git", f"{branch}:{branch}", force=True)
    text = ws.run("plan")
    assert "1 blocked." in text.stdout, text.stdout
    applied = ws.run("apply", "--yes")
    assert applied.code == 1
    assert "0 actions done, 0 failed, 1 blocked." in applied.stdout, applied.stdout
    assert applied.stdout.count("blocked Mirror/core") == 2  # each ref still listed


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/.-@{}~^:?*[\\ \x01\x7f", min_size=1, max_size=12))
def test_the_ref_name_check_agrees_with_git_check_ref_format(tail: str) -> None:
    for name in (tail, f"refs/heads/{tail}", f"refs/{tail}.lock"):
        if name.startswith("-"):  # stricter than git on purpose: never an option
            assert ref_format_problem(name) is not None
            continue
        git = subprocess.run(["git", "check-ref-format", name], capture_output=True)
        assert (ref_format_problem(name) is None) == (git.returncode == 0), name


_SHAS = st.sampled_from(["a" * 40, "b" * 40, "c" * 64])
_REFS = st.dictionaries(
    st.sampled_from(["refs/heads/main", "refs/heads/dev", "refs/tags/v1", "refs/notes/x"]),
    _SHAS,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    source=_REFS,
    dest=_REFS,
    exists=st.booleans(),
    forward=st.booleans(),
    strategy=st.sampled_from(["fail", "force", "skip"]),
    prune=st.booleans(),
)
def test_every_step_the_mirror_planner_writes_fits_its_model(
    source: dict[str, str],
    dest: dict[str, str],
    exists: bool,
    forward: bool,
    strategy: str,
    prune: bool,
) -> None:
    spec = MirrorSpec.model_validate(
        {
            "source": {"url": "/src/{repo}.git"},
            "destinations": [{"url": "/dst/{repo}.git"}, {"url": "/other/{repo}.git"}],
            "repos": ["app"],
            "conflictStrategy": strategy,
            "prune": prune,
        }
    )
    destinations = [
        DestinationObserved(
            url=url,
            exists=exists,
            refs=filtered(dest if exists else {}, spec),
            fast_forward=dict.fromkeys(source, forward),
        )
        for url in ("/dst/app.git", "/other/app.git")
    ]
    repo = RepoObserved(
        repo="app", source="/src/app.git", refs=filtered(source, spec), destinations=destinations
    )
    planned = plan_mirror(spec, MirrorObserved(repos=[repo]), None)
    for step in planned.steps:
        STEP_MODELS[step["op"]].model_validate(step, strict=True)


# -- steps of the right shape, taken from another world: only a plan made now is applied --


def unlike_a_plan_made_now(ws: Workspace, plan: dict[str, Any], field: str, saved: str) -> str:
    """Apply the edited plan: refused naming the change and `field`, nothing applied."""
    stderr = apply_tampered(ws, plan)
    assert f"{field} is {saved}, a plan made now says " in stderr, stderr
    assert "the saved plan was edited, or the world changed" in stderr, stderr
    return stderr


def test_an_environment_step_naming_another_commit_of_the_source_is_refused(
    ws: Workspace,
) -> None:
    # Every field fits its model: a real commit, its own release name, the spec's ref.
    app = app_repo(ws)
    other = app.commit("not what v1 names", {"VERSION": "other\n"})
    env_spec(ws)
    assert ws.run("plan").code == 0  # creates the store, as a first apply would
    plan = saved_plan(ws)
    steps = change_of(plan, "Environment/staging")["steps"]
    assert {s["sha"] for s in steps} == {app.rev("v1")}
    for step in steps:
        step.update(sha=other, release=f"1-{other[:7]}")
    stderr = unlike_a_plan_made_now(ws, plan, "steps[0].release", f"'1-{other[:7]}'")
    assert f"a plan made now says '1-{app.rev('v1')[:7]}'" in stderr
    assert "changes[0] ('Environment/staging'): steps[0].release" in stderr
    assert not (ws.root / "deploy").exists()  # no release, no hook, no current
    assert not list(ws.root.rglob("hooked"))


def filtered_mirror(ws: Workspace, only_main: bool = True, prune: bool = True) -> dict[str, str]:
    """source.git (main, dev, tag v1) mirrored once (`only_main`: with only `main`
    selected); the source's refs."""
    refs = seed_bare(ws.root / "source.git", branches=("main", "dev"), tags=("v1",))
    filters = "[main]" if only_main else '["*"]'
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: core}}
        spec:
          source: {{url: ../source.git}}
          destinations: [{{url: ../dest.git}}]
          branches: {filters}
          tags: {"[]" if only_main else '["*"]'}
          prune: {str(prune).lower()}
        """,
    )
    assert ws.run("apply", "--yes").code == 0
    return refs


@pytest.mark.parametrize("op", ["create", "fast-forward"])
def test_a_mirror_step_pushing_a_commit_from_outside_the_filters_is_refused(
    ws: Workspace, op: str
) -> None:
    refs = filtered_mirror(ws)
    assert set(refs_of(ws.root / "dest.git")) == {"refs/heads/main"}
    outside = refs["refs/heads/dev"]  # a commit of the source the filters leave out
    if op == "create":
        (ws.root / "dest.git").rename(ws.root / "dest.old")  # plan: init, create main
    else:
        work = WorkRepo.create(ws.root / "work", ws.root / "source.git")
        work.commit("two")
        work.push(ws.root / "source.git", "main:main")
    before = refs_of(ws.root / "dest.git") if op != "create" else None
    plan = saved_plan(ws)
    steps = change_of(plan, "Mirror/core")["steps"]
    number = next(i for i, s in enumerate(steps) if s["op"] == op)
    assert steps[number]["ref"] == "refs/heads/main"
    wanted = steps[number]["to"]
    steps[number]["to"] = outside
    stderr = unlike_a_plan_made_now(ws, plan, f"steps[{number}].to", f"'{outside}'")
    assert f"changes[0] ('Mirror/core'): steps[{number}].to" in stderr
    assert f"a plan made now says '{wanted}'" in stderr
    if op == "create":
        assert not (ws.root / "dest.git").exists()
    else:
        assert refs_of(ws.root / "dest.git") == before


def test_a_delete_added_to_a_mirror_without_prune_is_refused(ws: Workspace) -> None:
    filtered_mirror(ws, only_main=False, prune=False)  # every branch and tag
    first = saved_plan(ws)  # nothing to do: a noop of the resource
    assert change_of(first, "Mirror/core")["action"] == "noop"
    work = WorkRepo.create(ws.root / "work", ws.root / "dest.git")
    backup = work.commit("backup kept downstream")
    work.push(ws.root / "dest.git", "HEAD:refs/heads/backup")
    kept = ws.run("plan", "--json")  # the source lacks it, and prune is off: kept
    assert json.loads(kept.stdout)["changes"][0]["action"] == "noop", kept.output
    plan = saved_plan(ws)
    change = change_of(plan, "Mirror/core")
    change["action"] = "update"
    change["steps"] = [
        {
            "op": "delete",
            "repo": "source",
            "unit": str((ws.root / "dest.git").resolve()),
            "ref": "refs/heads/backup",
            "from": backup,
            "reason": "gone from the source",
        }
    ]
    before = refs_of(ws.root / "dest.git")
    unlike_a_plan_made_now(ws, plan, "changes[0] ('Mirror/core'): action", "'update'")
    assert refs_of(ws.root / "dest.git") == before
    assert refs_of(ws.root / "dest.git")["refs/heads/backup"] == backup


def test_a_blocked_ref_turned_into_a_force_update_is_refused(
    ws: Workspace, mirrored: WorkRepo
) -> None:
    other = WorkRepo.create(ws.root / "other", ws.root / "dest.git")
    other.git("checkout", "-q", "-B", "dev", "origin/dev")
    downstream = other.commit("downstream only", {"local.txt": "x\n"})
    other.push(ws.root / "dest.git", "dev:dev", force=True)  # diverged under fail: blocked
    plan = saved_plan(ws)
    change = change_of(plan, "Mirror/core")
    blocked = next(s for s in change["steps"] if s["op"] == "blocked")
    assert blocked["ref"] == "refs/heads/dev"
    blocked["op"] = "force-update"
    before = refs_of(ws.root / "dest.git")
    # main advanced too (an update): the op of the step is what differs
    number = change["steps"].index(blocked)
    unlike_a_plan_made_now(ws, plan, f"steps[{number}].op", "'force-update'")
    assert refs_of(ws.root / "dest.git") == before
    assert before["refs/heads/dev"] == downstream


def test_steps_of_an_earlier_plan_do_not_redeploy_a_failed_commit(ws: Workspace) -> None:
    app_repo(ws)
    builds = ws.root / "builds.txt"
    build = f'["{PY}", "-c", "open({str(builds)!r}, \'a\').write(\'built\\\\n\')"]'
    ws.write_spec(
        "env.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: staging}}
        spec:
          source: {{repo: ../app, ref: v1}}
          target: {{path: ../deploy/staging}}
          build: [{{run: {build}}}]
          verify: [{{run: ["{PY}", "-c", "raise SystemExit(1)"]}}]
        """,
    )
    assert ws.run("plan").code == 0
    honest = saved_plan(ws)
    failed = ws.run("apply", "plan.json")
    assert failed.code == 1, failed.output
    assert builds.read_text() == "built\n"
    plan = saved_plan(ws)  # the commit failed verify: blocked
    change = change_of(plan, "Environment/staging")
    assert change["action"] == "blocked", change
    pasted = change_of(honest, "Environment/staging")
    releases = sorted(p.name for p in (ws.root / "deploy" / "staging" / "releases").iterdir())
    for step in pasted["steps"]:
        step["release"] = step["release"].replace("1-", "2-", 1)
    change.update(action=pasted["action"], reason=pasted["reason"], steps=pasted["steps"])
    stderr = unlike_a_plan_made_now(ws, plan, "action", "'create'")
    assert "a plan made now says 'blocked'" in stderr
    assert builds.read_text() == "built\n"  # not built again
    assert sorted(p.name for p in (ws.root / "deploy" / "staging" / "releases").iterdir()) == (
        releases
    )


def test_honest_saved_plans_apply_while_waiting_or_blocked(ws: Workspace) -> None:
    # An environment waiting on `requires`, in the same saved plan as the one it waits for.
    app = app_repo(ws)
    for name, extra in (("staging", ""), ("production", "requires: [staging]")):
        ws.write_spec(
            f"{name}.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: Environment
            metadata: {{name: {name}}}
            spec:
              source: {{repo: ../app, ref: main}}
              target: {{path: ../deploy/{name}}}
              {extra}
            """,
        )
    assert ws.run("apply", "--yes").code == 0
    app.commit("v2", {"VERSION": "v2\n"})
    plan = saved_plan(ws)
    assert change_of(plan, "Environment/production")["action"] == "blocked"
    first = ws.run("apply", "plan.json")  # staging deploys; production waited when planned
    assert first.code == 1 and "refused" not in first.output, first.output
    assert "requires staging on main" in first.output, first.output
    plan = saved_plan(ws)
    assert change_of(plan, "Environment/production")["action"] == "update"
    second = ws.run("apply", "plan.json")
    assert second.code == 0, second.output
    assert ws.run("plan", "--detailed-exitcode").code == 0

    # A mirror whose diverged ref is blocked under fail while another ref moves.
    seed_bare(ws.root / "source.git", branches=("main", "dev"))
    mirror_spec(ws)
    assert ws.run("apply", "--yes").code == 0
    other = WorkRepo.create(ws.root / "other", ws.root / "dest.git")
    other.git("checkout", "-q", "-B", "dev", "origin/dev")
    other.commit("downstream only", {"local.txt": "x\n"})
    other.push(ws.root / "dest.git", "dev:dev", force=True)
    work = WorkRepo.create(ws.root / "work", ws.root / "source.git")
    work.commit("two")
    work.push(ws.root / "source.git", "main:main")
    plan = saved_plan(ws)
    assert [s["op"] for s in change_of(plan, "Mirror/core")["steps"]] == [
        "fast-forward",
        "blocked",
    ]
    applied = ws.run("apply", "plan.json")
    assert applied.code == 1 and "refused" not in applied.output, applied.output
    assert "1 actions done, 0 failed, 1 blocked." in applied.stdout, applied.stdout
    assert refs_of(ws.root / "dest.git")["refs/heads/main"] == work.rev("main")
    again = saved_plan(ws)  # only the blocked ref is left, and it stays blocked
    assert [s["op"] for s in change_of(again, "Mirror/core")["steps"]] == ["blocked"]
    blocked = ws.run("apply", "plan.json")
    assert blocked.code == 1 and "refused" not in blocked.output, blocked.output
