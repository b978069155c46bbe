"""Checking a saved plan's content before use: a plan file is data, never code.

Digests and serials say whether a plan is current; they say nothing of a step edited in
the file. Every change must be of a registered kind and a resource the specs hold (or be
the engine's own `forget` of one they dropped), and every step must fit its kind's model
for its op (`Controller.step_models`), checked with the resource's spec as context. Each
problem names the change, the step and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.kinds.base import INFORMATIVE_OPS, ChangeAction
from reconciler.kinds.registry import Registry
from reconciler.kinds.steps import Text, shown
from reconciler.specs import Resource


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Specs(_Strict):
    source: str
    commit: str | None
    digest: str


class PlanFile(_Strict):
    """The top level of a saved plan (Plan.save writes exactly these)."""

    format_version: int
    specs: _Specs
    state_serial: int
    changes: list[dict[str, Any]]
    summary: dict[str, int]
    observed: dict[str, str | None] = {}
    targets: list[str] = []


class ChangeFile(_Strict):
    """One change of a saved plan, its steps still unchecked."""

    address: str
    kind: str
    name: str
    action: ChangeAction
    reason: Text
    steps: list[dict[str, Any]]


class _Forget(_Strict):
    """The engine's step for a resource removed from the specs."""

    op: Literal["forget"]
    unit: str
    reason: Text


class _Unobserved(_Strict):
    """The engine's note for a resource that could not be observed (planning.py)."""

    op: Literal["blocked"]
    reason: Text


def change_file(index: int, data: Any) -> ChangeFile:
    """The change at `index` of a plan file, its own fields checked (raises ValueError)."""
    try:
        return ChangeFile.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"changes[{index}]." + described(error)) from None


def described(error: Exception) -> str:
    """One line for an error reading a plan file (pydantic's own text spans many)."""
    if isinstance(error, ValidationError):
        return "; ".join(_errors(error))
    return " ".join(str(error).split())[:500]


def _errors(error: ValidationError) -> list[str]:
    return [f"{_field(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()]


def change_problems(
    index: int, change: ChangeFile, registry: Registry, resources: Mapping[str, Resource]
) -> list[str]:
    """What is wrong with one change, one line per field (empty: it may be used)."""
    where = f"changes[{index}] ({shown(change.address)})"
    if change.address != f"{change.kind}/{change.name}":
        return [f"{where}: address: not {shown(change.kind + '/' + change.name)}"]
    if change.kind not in registry.kinds():
        return [f"{where}: kind: unknown kind {shown(change.kind)}"]
    resource = resources.get(change.address)
    if resource is None:
        return _forget_problems(where, change)
    if change.action == "delete":
        return [f"{where}: action: delete is only for a resource removed from the specs"]
    models = registry[change.kind].step_models
    problems: list[str] = []
    for number, step in enumerate(change.steps):
        problems += step_problems(f"{where}: steps[{number}]", step, models, resource)
        applied = step.get("op") not in INFORMATIVE_OPS
        if applied and change.action in ("noop", "blocked"):
            problems.append(f"{where}: steps[{number}].op: a {change.action} change applies none")
    return problems


def step_problems(
    where: str, step: dict[str, Any], models: Mapping[str, type[BaseModel]], resource: Resource
) -> list[str]:
    """What is wrong with one step against its kind's model for its op."""
    op = step.get("op")
    if op == "blocked" and "unit" not in step:
        models = {"blocked": _Unobserved}
    elif not isinstance(op, str) or op not in models:
        known = ", ".join(sorted(models)) or "none"
        return [f"{where}.op: unknown op {shown(str(op))} for a {resource.kind} (known: {known})"]
    try:
        models[op].model_validate(step, strict=True, context={"spec": resource.spec})
    except ValidationError as error:
        return [f"{where}.{line}" for line in _errors(error)]
    return []


def _forget_problems(where: str, change: ChangeFile) -> list[str]:
    if change.action != "delete":
        return [f"{where}: address: no such resource in the specs"]
    if len(change.steps) != 1:
        return [f"{where}: steps: a removed resource has exactly one step, forget"]
    try:
        step = _Forget.model_validate(change.steps[0])
    except ValidationError as error:
        return [f"{where}: steps[0].{line}" for line in _errors(error)]
    if step.unit != change.address:
        return [f"{where}: steps[0].unit: not {shown(change.address)}"]
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
