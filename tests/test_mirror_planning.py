"""The pure Mirror planner: table cases and properties (no I/O)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.kinds.mirror.model import MirrorSpec
from reconciler.kinds.mirror.observed import (
    DestinationObserved,
    MirrorObserved,
    RepoObserved,
    filtered,
)
from reconciler.kinds.mirror.planning import APPLYING_OPS, plan_destination, plan_mirror

A, B, C = "a" * 40, "b" * 40, "c" * 40


def spec(**fields: Any) -> MirrorSpec:
    return MirrorSpec.model_validate(
        {"source": {"url": "/src.git"}, "destinations": [{"url": "/dst.git"}], **fields}
    )


def steps_for(
    mirror: MirrorSpec,
    source: dict[str, str],
    dest: dict[str, str],
    fast_forward: dict[str, bool] | None = None,
    exists: bool = True,
) -> list[dict[str, Any]]:
    repo = RepoObserved(repo="src", source="/src.git", refs=filtered(source, mirror))
    destination = DestinationObserved(
        url="/dst.git", exists=exists, refs=filtered(dest, mirror), fast_forward=fast_forward or {}
    )
    return plan_destination(mirror, repo, destination)


def ops(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["op"], s.get("ref", "")) for s in steps]


def test_in_sync_destination_needs_nothing() -> None:
    assert steps_for(spec(), {"refs/heads/main": A}, {"refs/heads/main": A}) == []


def test_missing_destination_is_created_with_every_selected_ref() -> None:
    steps = steps_for(spec(), {"refs/heads/main": A, "refs/tags/v1": B}, {}, exists=False)
    assert ops(steps) == [("init", ""), ("create", "refs/heads/main"), ("create", "refs/tags/v1")]
    assert steps[0]["head"] == "refs/heads/main"


def test_behind_branch_fast_forwards_with_a_reason() -> None:
    steps = steps_for(
        spec(), {"refs/heads/main": B}, {"refs/heads/main": A}, {"refs/heads/main": True}
    )
    assert ops(steps) == [("fast-forward", "refs/heads/main")]
    assert steps[0]["from"] == A and steps[0]["to"] == B
    assert "behind the source" in steps[0]["reason"]


def test_diverged_branch_per_strategy() -> None:
    source, dest, ff = {"refs/heads/main": B}, {"refs/heads/main": A}, {"refs/heads/main": False}
    assert ops(steps_for(spec(), source, dest, ff)) == [("blocked", "refs/heads/main")]
    blocked = steps_for(spec(), source, dest, ff)[0]
    assert "diverged" in blocked["reason"] and "fail" in blocked["reason"]
    forced = steps_for(spec(conflictStrategy="force"), source, dest, ff)
    assert ops(forced) == [("force-update", "refs/heads/main")]
    assert ops(steps_for(spec(conflictStrategy="skip"), source, dest, ff)) == [
        ("skip", "refs/heads/main")
    ]


def test_a_moved_tag_is_a_conflict_not_a_fast_forward() -> None:
    steps = steps_for(spec(), {"refs/tags/v1": B}, {"refs/tags/v1": A})
    assert ops(steps) == [("blocked", "refs/tags/v1")]
    assert "tag moved" in steps[0]["reason"]


def test_refs_gone_from_the_source_are_kept_unless_prune() -> None:
    source, dest = {"refs/heads/main": A}, {"refs/heads/main": A, "refs/heads/old": B}
    assert steps_for(spec(), source, dest) == []
    steps = steps_for(spec(prune=True), source, dest)
    assert ops(steps) == [("delete", "refs/heads/old")]
    assert steps[0]["from"] == B


def test_refs_outside_the_filters_are_never_touched() -> None:
    mirror = spec(branches=["main", "release/*"], tags=[], prune=True)
    source = {
        "refs/heads/main": A,
        "refs/heads/feature": B,
        "refs/tags/v1": A,
        "refs/heads/release/1.0": C,
    }
    dest = {"refs/heads/wip": C, "refs/tags/v0": B}
    steps = steps_for(mirror, source, dest)
    assert ops(steps) == [("create", "refs/heads/main"), ("create", "refs/heads/release/1.0")]


def test_an_empty_selection_selects_nothing() -> None:
    mirror = spec(branches=[], tags=[], prune=True)
    assert steps_for(mirror, {"refs/heads/main": A}, {"refs/heads/x": B}) == []


def test_hidden_refs_are_never_selected() -> None:
    mirror = spec(prune=True)
    source = {"refs/pull/1/head": A, "refs/merge-requests/2/head": B, "refs/heads/main": C}
    assert ops(steps_for(mirror, source, {"refs/pull/9/head": A})) == [
        ("create", "refs/heads/main")
    ]


def test_unreachable_destination_is_blocked_with_its_error() -> None:
    mirror = spec()
    repo = RepoObserved(repo="src", source="/src.git", refs={"refs/heads/main": A})
    dest = DestinationObserved(url="/dst.git", error="connection refused")
    assert plan_destination(mirror, repo, dest) == [
        {"unit": "/dst.git", "repo": "src", "op": "blocked", "reason": "connection refused"}
    ]


def test_resource_verdicts() -> None:
    mirror = spec()
    in_sync = MirrorObserved(
        repos=[
            RepoObserved(
                repo="src",
                source="/src.git",
                refs={"refs/heads/main": A},
                destinations=[DestinationObserved(url="/dst.git", refs={"refs/heads/main": A})],
            )
        ]
    )
    verdict = plan_mirror(mirror, in_sync, None)
    assert verdict.action == "noop" and "match the source" in verdict.reason
    behind = in_sync.model_copy(deep=True)
    behind.repos[0].destinations[0].refs = {}
    assert plan_mirror(mirror, behind, None).action == "create"


# -- properties ----------------------------------------------------------------------------
SHAS = st.sampled_from([A, B, C, "d" * 40])
REFS = st.sampled_from(
    [
        "refs/heads/main",
        "refs/heads/dev",
        "refs/heads/release/1",
        "refs/tags/v1",
        "refs/tags/v2",
        "refs/pull/1/head",
    ]
)
REF_MAPS = st.dictionaries(REFS, SHAS, max_size=6)


def apply_steps(dest: dict[str, str], steps: list[dict[str, Any]]) -> dict[str, str]:
    """What a destination becomes when every applicable step succeeds."""
    result = dict(dest)
    for step in steps:
        if step["op"] in ("create", "fast-forward", "force-update"):
            result[step["ref"]] = step["to"]
        elif step["op"] == "delete":
            del result[step["ref"]]
        else:
            assert step["op"] not in APPLYING_OPS or step["op"] == "init"
    return result


@settings(max_examples=300, deadline=None)
@given(
    source=REF_MAPS,
    dest=REF_MAPS,
    ff=st.dictionaries(REFS, st.booleans()),
    branches=st.sampled_from([["*"], ["main"], ["release/*", "dev"], []]),
    tags=st.sampled_from([["*"], ["v1"], []]),
)
def test_force_with_prune_makes_the_destination_the_filtered_source(
    source: dict[str, str],
    dest: dict[str, str],
    ff: dict[str, bool],
    branches: list[str],
    tags: list[str],
) -> None:
    mirror = spec(branches=branches, tags=tags, prune=True, conflictStrategy="force")
    steps = steps_for(mirror, source, dest, ff)
    after = apply_steps(dest, steps)
    assert filtered(after, mirror) == filtered(source, mirror)
    # refs outside the filters are untouched
    assert {r: s for r, s in after.items() if r not in filtered(after, mirror)} == {
        r: s for r, s in dest.items() if r not in filtered(dest, mirror)
    }
    assert steps_for(mirror, source, after, ff) == []


@settings(max_examples=300, deadline=None)
@given(
    source=REF_MAPS,
    dest=REF_MAPS,
    ff=st.dictionaries(REFS, st.booleans()),
    strategy=st.sampled_from(["fail", "skip"]),
    prune=st.booleans(),
)
def test_without_force_diverged_refs_stay_and_replanning_only_repeats_them(
    source: dict[str, str], dest: dict[str, str], ff: dict[str, bool], strategy: str, prune: bool
) -> None:
    mirror = spec(conflictStrategy=strategy, prune=prune)
    steps = steps_for(mirror, source, dest, ff)
    after = apply_steps(dest, steps)
    kept = {s["ref"] for s in steps if s["op"] in ("blocked", "skip")}
    for ref in kept:
        assert after[ref] == dest[ref]  # a diverged destination ref is never overwritten
    for ref, sha in filtered(source, mirror).items():
        if ref not in kept:
            assert after[ref] == sha
    again = steps_for(mirror, source, after, ff)
    assert all(s["op"] in ("blocked", "skip") for s in again)
    assert {s["ref"] for s in again} == kept
