"""Applying an Environment: export a release, build, (preview,) switch, activate, verify;
a release that fails is never left current when autoRollback is on."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import GitError, PermanentError
from reconciler.git import (
    GitRunner,
    TreeEntry,
    attributed,
    export_tree,
    shadowed,
    tree_entries,
)
from reconciler.kinds.base import Action, ActionResult, Context
from reconciler.kinds.environment.hooks import run_check, run_hook
from reconciler.kinds.environment.manifests import fs_stamp, write_manifest
from reconciler.kinds.environment.model import Check, EnvironmentSpec
from reconciler.kinds.environment.planning import refusal
from reconciler.kinds.environment.releases import (
    SLOTS,
    Layout,
    check_release_name,
    release_number,
    remove_release,
    switch_link,
    write_failure,
)
from reconciler.kinds.environment.services import Services
from reconciler.processes import Outcome
from reconciler.store import now

HISTORY_KEPT = 50


@dataclass
class Deploy:
    """One deploy of one commit into one environment."""

    name: str
    spec: EnvironmentSpec
    context: Context
    state: dict[str, Any]
    layout: Layout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = Layout(Path(self.spec.target.path))

    def env(self, release: str, sha: str, slot: str | None = None) -> dict[str, str]:
        """The variables every hook and check sees."""
        variables = {
            "RECONCILER_ENV": self.name,
            "RECONCILER_RELEASE": release,
            "RECONCILER_RELEASE_DIR": str(self.layout.release(release)),
            "RECONCILER_REF": self.spec.source.ref,
            "RECONCILER_SHA": sha,
        }
        return {**variables, "RECONCILER_SLOT": slot} if slot else variables

    def hooks(
        self,
        hooks: list[Any],
        release: str,
        sha: str,
        slot: str | None = None,
        services: Services | None = None,
    ) -> Outcome:
        """Run hooks (or checks) in order in the release directory; stop at the first failure.
        Checks stop retrying once the `services` activate left running have all exited.
        Raises PermanentError when reconciler is stopping (a signal ended the hook)."""
        cwd = self.layout.release(release)
        gone = services.exited if services is not None else None
        for hook in hooks:
            env = self.env(release, sha, slot)
            checks = isinstance(hook, Check)
            outcome = run_check(hook, cwd, env, gone) if checks else run_hook(hook, cwd, env)
            if outcome.stopped:  # not a verdict on the release: record no failure
                raise PermanentError(outcome.detail)
            if not outcome.ok:
                return outcome
        return Outcome(True, "ok")


def deploy(
    name: str,
    spec: EnvironmentSpec,
    action: Action,
    context: Context,
    cache: Path,
    state: dict[str, Any],
    spec_digest: str,
) -> ActionResult:
    """Carry out a planned deploy; see the module docstring for the order of things."""
    run = Deploy(name, spec, context, dict(state))
    first = action.steps[0]
    sha, release = str(first["sha"]), str(first["release"])
    refuse_unsafe(run.layout, spec.target.path)
    try:
        check_release_name(release, sha)
    except ValueError as error:  # a tampered saved plan
        raise PermanentError(f"refused: {error}") from None
    if run.layout.release(release).exists():  # left by an interrupted run: take the next number
        release = f"{run.layout.next_number([])}-{sha[:7]}"
    started = time.monotonic()
    previous = run.layout.current_release()
    run.layout.releases.mkdir(parents=True, exist_ok=True)
    for left in run.layout.partials():  # by an export that crashed (kill -9, power loss)
        remove_release(run.layout, left)
    partial = run.layout.releases / f".{release}.partial"
    tree = tree_entries(context.git, cache, sha)
    clash = shadowed(tree)
    if clash is not None:  # never left to tar: whether it writes through the link varies
        raise GitError(f"cannot export {sha[:7]}: {clash} is both a file and a directory")
    try:
        export_tree(context.git, cache, sha, partial)
        exported = fs_stamp(run.layout.releases)  # what changes after it, git did not write
    except BaseException:  # out of space, read-only, interrupted: leave no litter
        remove_release(run.layout, partial.name)
        raise
    partial.rename(run.layout.release(release))
    rewritten = _rewritten(context.git, cache, tree)
    failure = _build_and_switch(run, release, sha, previous)
    if failure is None:
        meta = {"sha": sha, "ref": spec.source.ref}
        write_manifest(run.layout, release, meta, tree, exported, rewritten)
        failure = _verify(run, release, sha, previous)
    return _result(run, release, sha, previous, failure, time.monotonic() - started, spec_digest)


def _rewritten(runner: GitRunner, cache: Path, tree: dict[str, TreeEntry]) -> set[str]:
    """The paths `git archive` may have written otherwise than their blobs (gitattributes
    apply to them): every path when the tree has a `.gitattributes` of its own (its rules
    are the tree's, which `git check-attr` in a bare cache does not read), else those
    the cache's, the user's or the system's attributes name."""
    if any(path.rpartition("/")[2] == ".gitattributes" for path in tree):
        return set(tree)
    return attributed(runner, cache, tree)


def refuse_unsafe(layout: Layout, path: str) -> None:
    """Raise PermanentError when a link in the environment's directory leads outside it."""
    problems = layout.refusals()
    if problems:
        raise PermanentError(refusal(path, problems))


def _build_and_switch(
    run: Deploy, release: str, sha: str, previous: str | None
) -> tuple[str, str] | None:
    outcome = run.hooks(run.spec.build, release, sha)
    if not outcome.ok:
        return "build", outcome.detail
    if run.spec.strategy == "blue-green":
        active = run.layout.active_slot()
        idle = next(s for s in SLOTS if s != active)
        switch_link(run.layout.slot(idle), f"releases/{release}")
        outcome = run.hooks(run.spec.preview_checks(), release, sha, idle)
        if not outcome.ok:
            return "preview", outcome.detail
        switch_link(run.layout.current, idle)
    else:
        switch_link(run.layout.current, f"releases/{release}")
    return None


def _verify(run: Deploy, release: str, sha: str, previous: str | None) -> tuple[str, str] | None:
    slot = run.layout.active_slot()
    directory = run.layout.release(release)
    # Without activate hooks nothing is left running to follow, and without verify checks
    # nothing would wait on it: no scan of every process then (twice 40 ms on a busy host).
    following = bool(run.spec.activate and run.spec.verify)
    before = Services.of(directory) if following else None  # left by build or preview
    outcome = run.hooks(run.spec.activate, release, sha, slot)
    if not outcome.ok:
        return "activate", outcome.detail
    services = Services.of(directory, before=before) if following else Services(directory)
    outcome = run.hooks(run.spec.verify, release, sha, slot, services)
    return None if outcome.ok else ("verify", outcome.detail)


def switch_to(run: Deploy, release: str) -> None:
    """Make `release` current: directly (rolling) or through the slot that holds it."""
    if run.spec.strategy == "blue-green":
        holder = next((s for s in SLOTS if run.layout.slot_release(s) == release), None)
        if holder is None:
            holder = next(s for s in SLOTS if s != run.layout.active_slot())
            switch_link(run.layout.slot(holder), f"releases/{release}")
        switch_link(run.layout.current, holder)
    else:
        switch_link(run.layout.current, f"releases/{release}")


def _result(
    run: Deploy,
    release: str,
    sha: str,
    previous: str | None,
    failure: tuple[str, str] | None,
    seconds: float,
    spec_digest: str,
) -> ActionResult:
    state = run.state
    entry = {
        "name": release,
        "ref": run.spec.source.ref,
        "sha": sha,
        "at": now(),
        "duration": round(seconds, 3),
    }
    label = f"release {release} ({run.spec.source.ref}, {sha[:7]})"
    if failure is None:
        write_failure(run.layout, None)
        state.update(current=release, current_sha=sha, failed=None)
        state["healthy"] = [*state.get("healthy", []), release][-HISTORY_KEPT:]
        record_release(state, {**entry, "outcome": "healthy"})
        pruned = prune(run, state)
        note = f"; pruned {', '.join(pruned)}" if pruned else ""
        message = f"{label} healthy in {seconds:.1f}s{note}"
        return ActionResult("done", message, state, {"summary": message, "release": entry})
    stage, detail = failure
    state["failed"] = {"sha": sha, "spec": spec_digest, "release": release, "stage": stage}
    write_failure(run.layout, state["failed"])
    outcome = f"failed {stage}" + _roll_back(run, previous, stage)
    record_release(state, {**entry, "outcome": outcome, "detail": detail[-2000:]})
    message = f"{label} {outcome}: {detail}"
    return ActionResult("failed", message, state, {"summary": message, "release": entry})


def confirm(
    name: str,
    spec: EnvironmentSpec,
    action: Action,
    context: Context,
    state: dict[str, Any],
    spec_digest: str,
) -> ActionResult:
    """Activate and verify the release `current` runs though no deploy recorded it (the
    apply that switched to it was killed); a failure goes back to the recorded release."""
    run = Deploy(name, spec, context, dict(state))
    first = action.steps[0]
    release, sha = str(first["release"]), str(first["sha"])
    if run.layout.current_release() != release:
        raise PermanentError(f"`current` no longer runs {release}; plan again")
    recorded = state.get("current")
    previous = recorded if recorded and run.layout.release(recorded).is_dir() else None
    started = time.monotonic()
    failure = _verify(run, release, sha, previous)
    return _result(run, release, sha, previous, failure, time.monotonic() - started, spec_digest)


def _roll_back(run: Deploy, previous: str | None, stage: str) -> str:
    """After a failed activate/verify, put the previous release back and re-activate it;
    returns what to add to the outcome ("; rolled back to N", and whether that activate
    failed too: the previous release then runs, but maybe not as it should)."""
    if stage in ("build", "preview") or not run.spec.autoRollback or previous is None:
        return ""
    switch_to(run, previous)
    state = run.state
    state.update(current=previous)
    sha = str(state.get("current_sha") or "")
    outcome = run.hooks(run.spec.activate, previous, sha, run.layout.active_slot())
    if not outcome.ok:
        return f"; rolled back to {previous}, but activate failed: {outcome.detail[-500:]}"
    return f"; rolled back to {previous}"


def record_release(state: dict[str, Any], entry: dict[str, Any]) -> None:
    """Append to the release history kept in the state (the newest HISTORY_KEPT)."""
    state["releases"] = [*state.get("releases", []), entry][-HISTORY_KEPT:]


def prune(run: Deploy, state: dict[str, Any]) -> list[str]:
    """Delete old releases beyond keepReleases, never current, a slot's, or the last healthy two."""
    names = run.layout.names()
    healthy = state.get("healthy", [])
    protected = {run.layout.current_release(), *healthy[-2:]}
    protected |= {run.layout.slot_release(s) for s in SLOTS}
    removable = [n for n in names if n not in protected]
    excess = len(names) - run.spec.keepReleases
    doomed = sorted(removable, key=lambda n: release_number(n) or 0)[: max(0, excess)]
    for name in doomed:
        remove_release(run.layout, name)
    return doomed
