"""Is a saved plan what a plan made now says? Names what moved or differs.

Planning is pure given the specs, the observed facts and the stored state. A saved plan
whose specs digest, spec commit and state serial are unchanged must therefore equal a plan
made now from a fresh observation (made the way `plan` makes it: before anything applies),
change for change and field for field, noops and reasons included. Anything else was
edited in the file or saw another world, and is refused. Only the plan made now is
applied: nothing read from the file reaches git, a path or a hook.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.engine.plancheck import ChangeFile, PlanFile
from reconciler.engine.planning import make_plan
from reconciler.engine.plans import Change, Plan
from reconciler.engine.workspace import Workspace
from reconciler.errors import StalePlan
from reconciler.kinds.base.steps import shown
from reconciler.specs import SpecSet

_ABSENT = object()
_SHOWN = 5  # differences named in the message


def check_current(workspace: Workspace, saved: PlanFile, specs: SpecSet) -> Plan:
    """The plan made now, when `saved` is current and equal to it. Else StalePlan naming the
    inputs that moved (specs digest, spec commit, state serial, observed facts) or, change
    by change, the first field that differs."""
    reasons = _moved_inputs(workspace, saved, specs)
    if reasons:
        raise _stale(reasons)
    fresh = make_plan(workspace, specs, list(saved.targets))
    moved = [_moved(c, saved.observed) for c in fresh.changes]
    if any(moved):
        raise _stale([m for m in moved if m])
    differences = _differences(saved.changes, fresh.changes)
    if differences:
        more = len(differences) - _SHOWN
        listed = "; ".join(differences[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
        raise StalePlan(
            f"refused, nothing was applied: {listed}: the saved plan was edited, or the world "
            "changed; run `reconciler plan` again"
        )
    return fresh


def _moved_inputs(workspace: Workspace, saved: PlanFile, specs: SpecSet) -> list[str]:
    reasons = []
    if specs.digest != saved.specs.digest:
        reasons.append(
            f"the specs changed (digest {_short(saved.specs.digest)}, now {_short(specs.digest)})"
        )
    if specs.commit != saved.specs.commit:
        reasons.append(f"the spec commit changed ({saved.specs.commit}, now {specs.commit})")
    serial = workspace.store.serial()
    if serial != saved.state_serial:
        reasons.append(
            f"the state changed (serial {saved.state_serial}, now {serial}): another apply ran"
        )
    return reasons


def _moved(change: Change, observed: dict[str, str | None]) -> str | None:
    """Why the facts `change` was planned from differ from the saved plan's (None: same)."""
    if change.address not in observed or observed[change.address] == change.fingerprint:
        return None  # a change the saved plan lacks is named as a difference
    if change.fingerprint is None:
        return f"{change.address} cannot be observed ({change.reason})"
    return f"the observed facts of {change.address} changed"


def _stale(reasons: list[str]) -> StalePlan:
    return StalePlan(
        "the saved plan is stale: " + "; ".join(reasons) + ". Run `reconciler plan` again."
    )


def _differences(saved: list[ChangeFile], fresh: tuple[Change, ...]) -> list[str]:
    """Per change of the saved plan, its first field unlike the plan made now; then the
    changes the saved plan lacks. Matched by address: the order of independent resources
    may differ from one run to the next."""
    now: dict[str, dict[str, Any]] = {c.address: _as_read(c.to_json()) for c in fresh}
    seen: set[str] = set()
    found = []
    for index, change in enumerate(saved):
        where = f"changes[{index}] ({shown(change.address)})"
        if change.address in seen:
            found.append(f"{where}: a second change of it; a plan made now has one")
        elif change.address not in now:
            found.append(f"{where}: a plan made now has no change of it")
        else:
            first = _first_difference(change.model_dump(), now[change.address])
            found += [f"{where}: {first}"] if first else []
        seen.add(change.address)
    found += [
        f"{shown(address)}: missing from the saved plan, a plan made now has it "
        f"(action {change['action']})"
        for address, change in now.items()
        if address not in seen
    ]
    return found


def _first_difference(saved: dict[str, Any], now: dict[str, Any]) -> str | None:
    """`FIELD is X, a plan made now says Y` for the first field that differs: what is done
    before why (the reason texts last)."""
    for key in ("kind", "name", "action"):
        if saved[key] != now[key]:
            return _unlike(key, saved[key], now[key])
    ours, theirs = saved["steps"], now["steps"]
    first = _step_difference(ours, theirs, reasons=False)
    if first is None and len(ours) != len(theirs):
        count = min(len(ours), len(theirs))
        extra = max(ours, theirs, key=len)[count]
        where = "is not in a plan made now" if len(ours) > count else "is missing"
        first = (
            f"steps[{count}] (op {_value(extra.get('op', _ABSENT))}) {where}: the saved plan "
            f"has {len(ours)} steps, a plan made now {len(theirs)}"
        )
    if first is None and saved["reason"] != now["reason"]:
        first = _unlike("reason", saved["reason"], now["reason"])
    return first or _step_difference(ours, theirs, reasons=True)


def _step_difference(
    ours: list[dict[str, Any]], theirs: list[dict[str, Any]], reasons: bool
) -> str | None:
    """The first field (`op` first; only `reason`, or all but it) unlike in a step."""
    for number, (step, made) in enumerate(zip(ours, theirs, strict=False)):
        keys = [k for k in step.keys() | made.keys() if (k == "reason") == reasons]
        for key in sorted(keys, key=lambda k: (k != "op", k)):
            if step.get(key, _ABSENT) != made.get(key, _ABSENT):
                return _unlike(
                    f"steps[{number}].{key}", step.get(key, _ABSENT), made.get(key, _ABSENT)
                )
    return None


def _unlike(field: str, saved: Any, now: Any) -> str:
    return f"{field} is {_value(saved)}, a plan made now says {_value(now)}"


def _value(value: Any) -> str:
    """A value as the message shows it: a string quoted, anything else as JSON, bounded."""
    if value is _ABSENT:
        return "absent"
    if isinstance(value, str):
        return shown(value, 80)
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _as_read(data: dict[str, Any]) -> dict[str, Any]:
    """`data` as a saved plan file holds it (tuples become lists)."""
    result: dict[str, Any] = json.loads(json.dumps(data))
    return result


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]
