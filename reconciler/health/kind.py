"""The HealthPolicy kind: checks on an interval and remediations in order.

A policy has nothing to apply of its own: `plan` is always a no-op with a reason. The
checks and remediations run in `reconciler health`, `heal` and `watch` (health.policies,
health.healing), which read the policy's validated spec from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from reconciler.health.model import HealthPolicySpec
from reconciler.kinds.base import Action, ActionResult, Context, ResourcePlan
from reconciler.specs import Resource
from reconciler.store import ResourceRecord

POLICY_KIND = "HealthPolicy"


class HealthPolicyObserved(BaseModel):
    """A policy observes nothing: its checks run apart from planning."""

    model_config = ConfigDict(extra="forbid")


class HealthPolicyController:
    """Validates policies; plans nothing (the checks run in `health` / `heal` / `watch`)."""

    kind: ClassVar[str] = POLICY_KIND
    spec_model: ClassVar[type[BaseModel]] = HealthPolicySpec
    step_models: ClassVar[Mapping[str, type[BaseModel]]] = {}  # a policy plans no steps

    def references(self, resource: Resource) -> dict[str, str]:
        """The addresses the selector names must exist."""
        spec = policy_spec(resource)
        return {address: "spec.selector.addresses" for address in spec.selector.addresses}

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        """Nothing to read."""
        return HealthPolicyObserved()

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        """Always a no-op: a policy changes nothing by being applied."""
        return ResourcePlan(
            "noop", "a health policy has nothing to apply; `reconciler health` runs its checks"
        )

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        """Never called: plan() has no actions."""
        return ActionResult("done", "nothing to apply")


def policy_spec(resource: Resource) -> HealthPolicySpec:
    """The validated spec of a HealthPolicy resource."""
    assert isinstance(resource.spec, HealthPolicySpec)
    return resource.spec
