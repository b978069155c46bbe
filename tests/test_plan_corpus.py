"""The planner corpus: one case per file under tests/plans/<kind>/ (see tests/plans/README.md).

Each case is desired + observed + last applied in, and the plan out (action, reason, steps);
then the world as those steps leave it, and the second plan, which must apply nothing. The
resource goes through the real spec loader; the plan is the controller's own pure `plan()`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reconciler.kinds.base import ResourcePlan
from reconciler.kinds.environment.observing import EnvironmentObserved
from reconciler.kinds.mirror.observed import MirrorObserved
from reconciler.kinds.registry import default_registry
from reconciler.kinds.taxonomy.observed import TaxonomyObserved
from reconciler.specs import Resource, load_directory
from reconciler.store import ResourceRecord

CORPUS = Path(__file__).parent / "plans"
# Directory -> (kind, its observed model): explicit, so the test needs nothing of the
# controller but plan().
KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "mirror": ("Mirror", MirrorObserved),
    "environment": ("Environment", EnvironmentObserved),
    "taxonomy": ("Taxonomy", TaxonomyObserved),
}
# Stands for the resource's own spec digest wherever a case needs it (a recorded failure).
DIGEST = "$digest"
CASES = sorted(CORPUS.glob("*/*.json"))


def load_resource(document: dict[str, Any], directory: Path) -> Resource:
    """The case's desired document, loaded as a spec file is (JSON is YAML)."""
    (directory / "spec.yaml").write_text(json.dumps(document, indent=2))
    specs = load_directory(directory, default_registry().spec_models(), environ={})
    (resource,) = specs.resources
    return resource


def record_of(resource: Resource, fields: dict[str, Any] | None) -> ResourceRecord | None:
    """The stored record a case gives (None: never applied); unnamed fields as the last
    apply of this very spec, done, would have left them."""
    if fields is None:
        return None
    defaults: dict[str, Any] = {
        "address": resource.address,
        "kind": resource.kind,
        "name": resource.name,
        "spec": resource.public_dict(),
        "spec_digest": resource.digest,
        "state": {},
        "revision_id": 1,
        "last_applied_at": None,
        "outcome": "done",
        "message": None,
        "pinned": None,
    }
    return ResourceRecord(**(defaults | fields))


def filled(value: Any, digest: str) -> Any:
    """`value` with every "$digest" replaced by the resource's spec digest."""
    if value == DIGEST:
        return digest
    if isinstance(value, dict):
        return {k: filled(v, digest) for k, v in value.items()}
    if isinstance(value, list):
        return [filled(v, digest) for v in value]
    return value


def plan_of(kind_dir: str, resource: Resource, world: dict[str, Any]) -> ResourcePlan:
    """The controller's plan for the observed world and last-applied record in `world`."""
    kind, observed_model = KINDS[kind_dir]
    assert resource.kind == kind, f"a {resource.kind} in the {kind_dir} corpus"
    observed = observed_model.model_validate(filled(world["observed"], resource.digest))
    record = record_of(resource, filled(world["last_applied"], resource.digest))
    return default_registry()[kind].plan(resource, observed, record)


def shown(plan: ResourcePlan, with_steps: bool = True) -> dict[str, Any]:
    """The plan as the case writes it (JSON types: tuples become lists)."""
    data: dict[str, Any] = {"action": plan.action, "reason": plan.reason}
    if with_steps:
        data["steps"] = plan.steps
    if plan.health is not None:
        data["health"] = plan.health
    return dict(json.loads(json.dumps(data)))


def expected(part: dict[str, Any], with_steps: bool = True) -> dict[str, Any]:
    keys = ("action", "reason", "steps", "health") if with_steps else ("action", "reason", "health")
    return {k: part[k] for k in keys if k in part}


def mismatch(name: str, actual: dict[str, Any]) -> str:
    """What a failing case prints: the actual plan, ready to paste into the file after review."""
    return f"{name}: the planner gives\n{json.dumps(actual, indent=2, ensure_ascii=False)}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_plan_case(path: Path, tmp_path: Path) -> None:
    case = json.loads(path.read_text())
    name = f"{path.parent.name}/{path.name}"
    resource = load_resource(case["desired"], tmp_path)

    first = plan_of(path.parent.name, resource, case)
    actual = shown(first)
    assert actual == expected(case), mismatch(name, actual)

    # Nothing applied (noop, blocked): the world after is the world before.
    after = case.get("after") or {k: case[k] for k in ("observed", "last_applied")}
    assert first.actions == () or "after" in case, f"{name}: steps applied but no `after`"
    second = plan_of(path.parent.name, resource, after)
    again = shown(second, with_steps=False)
    assert again == expected(case["second"], with_steps=False), mismatch(f"{name} (second)", again)
    assert second.actions == (), f"{name}: the second plan still applies steps"
    # Blocked only where something stays blocked: every step a note, none applicable.
    assert case["second"]["action"] in ("noop", "blocked"), name


def test_every_kind_has_its_corpus() -> None:
    counts = {d: len(list((CORPUS / d).glob("*.json"))) for d in KINDS}
    assert all(n >= 15 for n in counts.values()), counts
    strays = [p for p in CORPUS.rglob("*.json") if p.parent.name not in KINDS]
    assert not strays, strays
