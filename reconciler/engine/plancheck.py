"""Checking a saved plan's shape before use: a plan file is data, never code.

`apply PLANFILE` never runs what it reads: it plans afresh and applies the plan made now
only if the saved one equals it (engine/staleness.py). These checks come first, so that a
damaged or hostile file is refused with a precise message before anything is observed:
every change is of a registered kind and every step fits its kind's model for its op
(`Controller.step_models`: shas are hex of the right length, ref names pass
`git check-ref-format`, release names carry their sha). Each problem names the change,
the step and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.engine.plans import FORMAT_VERSION
from reconciler.errors import StalePlan
from reconciler.kinds.base import ChangeAction
from reconciler.kinds.base.steps import Text, shown
from reconciler.kinds.registry import Registry


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Specs(_Strict):
    source: str
    commit: str | None
    digest: str


class ChangeFile(_Strict):
    """One change of a saved plan, its steps still unchecked."""

    address: str
    kind: str
    name: str
    action: ChangeAction
    reason: Text
    steps: list[dict[str, Any]]


class PlanFile(_Strict):
    """A saved plan as read back (Plan.save writes exactly these fields)."""

    format_version: int
    specs: _Specs
    state_serial: int
    changes: list[ChangeFile]
    summary: dict[str, int]
    observed: dict[str, str | None] = {}
    targets: list[str] = []


class _Forget(_Strict):
    """The engine's step for a resource removed from the specs (planning.py)."""

    op: Literal["forget"]
    unit: str
    reason: Text


class _Unobserved(_Strict):
    """The engine's note for a resource that could not be observed (planning.py)."""

    op: Literal["blocked"]
    reason: Text


def described(error: Exception) -> str:
    """One line for an error reading a plan file (pydantic's own text spans many)."""
    if isinstance(error, ValidationError):
        return "; ".join(_errors(error))
    return " ".join(str(error).split())[:500]


def _errors(error: ValidationError) -> list[str]:
    return [f"{_field(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()]


def plan_problems(saved: PlanFile, registry: Registry) -> list[str]:
    """What is wrong with the steps of a saved plan, one line per field (empty: none)."""
    return [p for i, c in enumerate(saved.changes) for p in change_problems(i, c, registry)]


def change_problems(index: int, change: ChangeFile, registry: Registry) -> list[str]:
    """What is wrong with the steps of one change, one line per field."""
    where = f"changes[{index}] ({shown(change.address)})"
    if change.kind not in registry.kinds():
        return [f"{where}: kind: unknown kind {shown(change.kind)}"]
    models = registry[change.kind].step_models
    return [
        problem
        for number, step in enumerate(change.steps)
        for problem in step_problems(f"{where}: steps[{number}]", step, models, change.kind)
    ]


def step_problems(
    where: str, step: dict[str, Any], models: Mapping[str, type[BaseModel]], kind: str
) -> list[str]:
    """What is wrong with one step against its kind's model for its op (or the engine's)."""
    op = step.get("op")
    if op == "forget":
        models = {"forget": _Forget}
    elif op == "blocked" and "unit" not in step:
        models = {"blocked": _Unobserved}
    elif not isinstance(op, str) or op not in models:
        known = ", ".join(sorted(models)) or "none"
        return [f"{where}.op: unknown op {shown(str(op))} for a {kind} (known: {known})"]
    try:
        models[op].model_validate(step, strict=True)
    except ValidationError as error:
        return [f"{where}.{line}" for line in _errors(error)]
    return []


def _field(loc: tuple[int | str, ...]) -> str:
    """`('fields', 'label', 0)` -> `fields.label[0]`."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text or "(step)"


def load_plan(path: Path, registry: Registry) -> PlanFile:
    """Read a saved plan, every field of every step checked. It is
    only ever compared with a plan made now (engine/staleness.py), never applied as read."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise StalePlan(f"{path}: plan format {version} is not supported")
        saved = PlanFile.model_validate(data)
    except (OSError, ValueError, RecursionError) as error:  # ValidationError: a ValueError
        raise StalePlan(
            f"{path}: refused, nothing was applied: not a readable saved plan: {described(error)}"
        ) from None
    problems = plan_problems(saved, registry)
    if problems:
        raise StalePlan(
            f"{path}: refused, nothing was applied: the saved plan was edited or is damaged:\n  "
            + "\n  ".join(problems)
        )
    return saved
