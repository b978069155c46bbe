"""The Checker capability is generic: a kind reconciler does not ship, registered in a
workspace, answers health's questions about itself, and health, healing and metrics ask it
(no kind name tested anywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from reconciler.engine.applying import execute
from reconciler.engine.planning import load, make_plan
from reconciler.engine.workspace import Workspace as Run
from reconciler.health.healing import heal
from reconciler.health.policies import check_health
from reconciler.kinds.base import (
    Action,
    ActionResult,
    Activity,
    CheckFunction,
    CheckResult,
    Context,
    Planned,
    RecordFacts,
    ResourcePlan,
)
from reconciler.specs import Resource
from reconciler.store import ResourceRecord
from reconciler.watch.metrics import store_metrics
from tests.conftest import Workspace


class ProbeSpec(BaseModel):
    """A resource that holds a commit and says how its deployment is."""

    model_config = ConfigDict(extra="forbid")

    commit: str
    verdict: Literal["Healthy", "Degraded"]


class ProbeObserved(BaseModel):
    """A probe reads nothing of the world."""


class RecordStep(BaseModel):
    """The one step a probe plans."""

    op: Literal["record"]
    commit: str


def probe_deployment(resource: Resource, planned: Planned, context: Context) -> CheckResult:
    """The probe's own answer to a `deployment` check."""
    assert isinstance(resource.spec, ProbeSpec)
    message = f"probe {resource.name} says {resource.spec.verdict} ({planned.reason})"
    return CheckResult("deployment", resource.spec.verdict, message)


class ProbeController:
    """A real controller: plans a `record` step until the stored commit is the spec's."""

    kind: ClassVar[str] = "Probe"
    spec_model: ClassVar[type[BaseModel]] = ProbeSpec
    step_models: ClassVar[Mapping[str, type[BaseModel]]] = {"record": RecordStep}
    checks: ClassVar[Mapping[str, CheckFunction]] = {"deployment": probe_deployment}
    activity: ClassVar[Activity] = "deploy"
    heals_by_rollback: ClassVar[bool] = False

    def facts(self, record: ResourceRecord) -> RecordFacts:
        return RecordFacts(last_deploy=record.last_applied_at, commit=record.state.get("probe"))

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        return ProbeObserved()

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        assert isinstance(resource.spec, ProbeSpec)
        commit = resource.spec.commit
        if last_applied is not None and last_applied.state.get("probe") == commit:
            return ResourcePlan("noop", f"at {commit}")
        step: dict[str, Any] = {"op": "record", "commit": commit}
        return ResourcePlan("create", f"record {commit}", (Action("probe", (step,)),))

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        commit = str(action.steps[0]["commit"])
        return ActionResult("done", f"recorded {commit}", state=commit)


def test_health_healing_and_metrics_ask_a_kind_they_do_not_know(ws: Workspace) -> None:
    ws.write_spec(
        "probe.yaml",
        """
        apiVersion: reconciler/v1
        kind: Probe
        metadata: {name: p, labels: {team: probes}}
        spec: {commit: abc1234, verdict: Degraded}
        ---
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: probes}
        spec:
          selector: {labels: {team: probes}}
          checks: [{type: deployment}, {type: taxonomy}]
          remediation: [{rollback: {}}]
        """,
    )
    run = Run(specs=str(ws.specs), state=ws.state)
    run.registry.register(ProbeController())
    specs = load(run)
    applied = execute(run, make_plan(run, specs), specs)
    assert applied.ok, applied

    report = check_health(run, specs)
    (row,) = report.resources
    checks = {c.type: (c.status, c.message) for c in row.checks}
    assert checks["deployment"] == ("Degraded", "probe p says Degraded (at abc1234)")
    assert checks["taxonomy"] == ("Healthy", "not a taxonomy")  # asked, not answered
    assert (row.status, row.failing, row.commit) == ("Degraded", "deployment", "abc1234")
    assert row.last_deploy is not None

    (action,) = heal(run, specs, report)
    assert action.message == "rollback: only Environments roll back; awaiting recovery"

    metrics = store_metrics(run.store, run.registry)
    assert (metrics["deploy"]["total"], metrics["sync"]["total"]) == (1, 0)
