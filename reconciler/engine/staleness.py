"""Is a saved plan still current? Names every input that changed since it was made."""

from __future__ import annotations

from reconciler.engine.planning import observe
from reconciler.engine.plans import Plan
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.kinds.base import fingerprint
from reconciler.specs import SpecSet


def check_current(workspace: Workspace, saved: Plan, specs: SpecSet) -> None:
    """Raise StalePlan listing what moved: specs digest, spec commit, state serial, observations."""
    reasons = []
    if specs.digest != saved.digest:
        reasons.append(
            f"the specs changed (digest {_short(saved.digest)}, now {_short(specs.digest)})"
        )
    if specs.commit != saved.commit:
        reasons.append(f"the spec commit changed ({saved.commit}, now {specs.commit})")
    serial = workspace.store.serial()
    if serial != saved.state_serial:
        reasons.append(
            f"the state changed (serial {saved.state_serial}, now {serial}): another apply ran"
        )
    if not reasons:
        reasons += _moved_observations(workspace, saved, specs)
    if reasons:
        raise StalePlan(
            "the saved plan is stale: " + "; ".join(reasons) + ". Run `reconciler plan` again."
        )


def _moved_observations(workspace: Workspace, saved: Plan, specs: SpecSet) -> list[str]:
    resources = specs.by_address()
    moved = []
    for change in saved.changes:
        if change.action == "noop" or change.address not in resources:
            continue
        try:
            now = fingerprint(observe(workspace, resources[change.address]))
        except ReconcilerError as error:
            moved.append(f"{change.address} cannot be observed ({error})")
            continue
        if now != change.fingerprint:
            moved.append(f"the observed facts of {change.address} changed")
    return moved


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]
