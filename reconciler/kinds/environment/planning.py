"""Pure planning of an Environment: the steps of a deploy, or why none is needed or allowed."""

from __future__ import annotations

from typing import Any

from reconciler.git.refs import short
from reconciler.kinds.base import Action, ChangeAction, KindHealth, ResourcePlan, Step
from reconciler.kinds.environment.model import EnvironmentSpec
from reconciler.kinds.environment.observing import EnvironmentObserved
from reconciler.kinds.environment.releases import release_name


def plan_environment(
    name: str,
    spec: EnvironmentSpec,
    observed: EnvironmentObserved,
    unit_state: dict[str, Any] | None,
    spec_digest: str,
) -> ResourcePlan:
    """Deploy when `current` does not run the spec's commit (or was altered by hand)."""
    unit = spec.target.path
    wanted = f"{observed.ref} ({short(observed.sha)})"
    if observed.error or observed.sha is None:
        reason = observed.error or "the ref resolves to nothing"
        return _blocked(unit, reason)
    if observed.refused:
        return _blocked(unit, refusal(spec.target.path, observed.refused))
    running = _running(name, observed)
    failed = (unit_state or {}).get("failed") or observed.failed or {}
    broken = _broken(observed, failed, running)
    for required, seen in observed.required.items():
        if not seen.healthy or seen.sha != observed.sha:
            runs = f"runs {short(seen.sha)}" if seen.sha else "runs nothing yet"
            health = "healthy" if seen.healthy else f"not healthy ({seen.message})"
            reason = f"requires {required} on {wanted}; {required} {runs}, {health}"
            if broken:  # waiting is Progressing only while what runs is healthy
                return _blocked(unit, f"{reason}; {broken}")
            return _blocked(unit, reason, waiting=True)
    problem = observed.link_problem or (
        "altered by hand: " + ", ".join(observed.drift) if observed.drift else None
    )
    # Checked before "as the spec wants" (see _failed).
    if failed.get("sha") == observed.sha and not problem:
        verdict = _failed(spec, observed, failed, unit_state, spec_digest, running)
        if verdict is not None:
            return verdict
    if observed.current_sha == observed.sha and not problem:
        if _unrecorded(observed, unit_state, failed):
            reason = (
                f"{running}, switched to by an interrupted apply that never verified it: "
                "activate and verify it again, then record it"
            )
            steps = confirm_steps(spec, observed, reason)
            change: ChangeAction = "update" if unit_state else "create"
            return ResourcePlan(change, str(steps[0]["reason"]), (Action(unit, tuple(steps)),))
        return ResourcePlan("noop", f"{running}, as the spec wants")
    reason = f"{running}; {problem}" if problem else f"{running}, spec wants {wanted}"
    known = [r["name"] for r in (unit_state or {}).get("releases", [])]
    steps = deploy_steps(spec, observed, known, reason)
    action: ChangeAction = "update" if unit_state else "create"
    # A deploy repairs a dangling `current`; until it does, nothing healthy runs.
    dangling: KindHealth | None = "Degraded" if observed.link_problem else None
    return ResourcePlan(action, reason, (Action(unit, tuple(steps)),), health=dangling)


def _broken(observed: EnvironmentObserved, failed: dict[str, Any], running: str) -> str | None:
    """Why what runs now is not healthy (its release failed and stays current, or
    `current` leads nowhere); None when it is as healthy as its last deploy left it."""
    if observed.link_problem:
        return observed.link_problem
    if observed.current is not None and observed.current == failed.get("release"):
        return f"{running}, which failed {failed.get('stage')}"
    return None


def _failed(
    spec: EnvironmentSpec,
    observed: EnvironmentObserved,
    failed: dict[str, Any],
    unit_state: dict[str, Any] | None,
    spec_digest: str,
    running: str,
) -> ResourcePlan | None:
    """The plan while the spec's commit is the one that failed (None: plan as usual). A
    release that failed and stays current (a first release, autoRollback off) is not what
    the spec asked for, whatever else in the spec changes: blocked while the spec is the
    same, verified again once it changed; only a pass (or a new release) clears it. A
    rollback to an earlier release of the same commit is what the spec wants, though."""
    unit = spec.target.path
    stays = observed.current == failed.get("release")
    if failed.get("spec") == spec_digest and (stays or observed.current_sha != observed.sha):
        return _blocked(
            unit,
            f"{observed.ref} ({short(observed.sha)}) failed in release "
            f"{failed.get('release')} ({failed.get('stage')}); "
            "not deployed again until the spec changes",
        )
    if not stays:
        return None
    reason = (
        f"{running}, which failed {failed.get('stage')}; the spec changed since: "
        "activate and verify it again (only a pass clears the failure)"
    )
    steps = confirm_steps(spec, observed, reason)
    change: ChangeAction = "update" if unit_state else "create"
    return ResourcePlan(change, reason, (Action(unit, tuple(steps)),))


def refusal(path: str, problems: list[str]) -> str:
    """Why an environment directory is left alone, and what a person has to do."""
    return (
        f"refused to touch {path}: {'; '.join(problems)}; nothing was changed "
        "(remove or fix the link, then plan again)"
    )


def deploy_steps(
    spec: EnvironmentSpec, observed: EnvironmentObserved, known: list[str], reason: str
) -> list[Step]:
    """fetch, export, build, preview (blue-green), switch, activate, verify, prune."""
    sha = observed.sha or ""
    number = max([_number(n) for n in [*observed.releases, *known]], default=0) + 1
    release = release_name(number, sha)
    base = {"unit": spec.target.path, "release": release, "ref": observed.ref, "sha": sha}
    steps: list[Step] = [
        {**base, "op": "fetch", "reason": f"{reason}: fetch {short(sha)} into the cache"},
        {**base, "op": "export", "reason": f"export {short(sha)} to releases/{release}"},
    ]
    steps += [{**base, "op": "build", "run": h.run, "reason": "build hook"} for h in spec.build]
    if spec.strategy == "blue-green":
        idle = "green" if observed.slot == "blue" else "blue"
        steps.append(
            {
                **base,
                "op": "preview",
                "slot": idle,
                "reason": f"{len(spec.preview_checks())} checks of the idle slot {idle}",
            }
        )
        steps.append(
            {
                **base,
                "op": "switch",
                "slot": idle,
                "reason": f"current -> {idle} (was {observed.slot or 'none'})",
            }
        )
    else:
        steps.append(
            {
                **base,
                "op": "switch",
                "reason": f"current -> releases/{release} (was {observed.current or 'none'})",
            }
        )
    steps += [
        {**base, "op": "activate", "run": h.run, "reason": "activate hook"} for h in spec.activate
    ]
    if spec.verify:
        rollback = "roll back if it fails" if spec.autoRollback else "no automatic rollback"
        steps.append({**base, "op": "verify", "reason": f"{len(spec.verify)} checks; {rollback}"})
    on_disk = len(observed.releases) + 1
    if on_disk > spec.keepReleases:
        steps.append(
            {
                **base,
                "op": "prune",
                "reason": f"keep {spec.keepReleases} releases (plus current and previous)",
            }
        )
    return steps


def _unrecorded(
    observed: EnvironmentObserved, unit_state: dict[str, Any] | None, failed: dict[str, Any]
) -> bool:
    """`current` runs a release no finished deploy recorded: the apply that switched to it
    was killed before it activated, verified and recorded it (its manifest is written at
    the switch, so the files alone do not prove it ever passed its checks)."""
    state = unit_state or {}
    return observed.current not in (state.get("current"), failed.get("release"))


def confirm_steps(spec: EnvironmentSpec, observed: EnvironmentObserved, reason: str) -> list[Step]:
    """confirm, activate, verify: check again the release `current` runs, for `reason` (an
    interrupted deploy never verified it, or it failed and the spec changed since)."""
    base = {
        "unit": spec.target.path,
        "release": observed.current,
        "ref": observed.ref,
        "sha": observed.sha,
    }
    steps: list[Step] = [{**base, "op": "confirm", "reason": reason}]
    steps += [
        {**base, "op": "activate", "run": h.run, "reason": "activate hook"} for h in spec.activate
    ]
    if spec.verify:
        rollback = "roll back if it fails" if spec.autoRollback else "no automatic rollback"
        steps.append({**base, "op": "verify", "reason": f"{len(spec.verify)} checks; {rollback}"})
    return steps


def _running(name: str, observed: EnvironmentObserved) -> str:
    if observed.current is None:
        return f"{name} runs nothing yet"
    return f"{name} runs release {observed.current} ({short(observed.current_sha)})"


def _number(name: str) -> int:
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _blocked(unit: str, reason: str, waiting: bool = False) -> ResourcePlan:
    """Blocked with `reason`; `waiting`: only until a required environment is ready, which
    is Progressing (what runs is healthy), not Degraded."""
    note: Step = {"unit": unit, "op": "blocked", "reason": reason}
    return ResourcePlan("blocked", reason, notes=(note,), health="Progressing" if waiting else None)
