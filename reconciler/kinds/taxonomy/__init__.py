"""The Taxonomy kind: a vocabulary of terms written into several repositories, merged
three-way with the edits made there, versioned, and rolled back on request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel

from reconciler.kinds.base import (
    Action,
    ActionResult,
    Activity,
    CheckFunction,
    CheckResult,
    Context,
    Planned,
    PullReport,
    RecordFacts,
    ResourcePlan,
    UnknownTarget,
)
from reconciler.kinds.taxonomy.applying import apply_target
from reconciler.kinds.taxonomy.collector import collector_paused
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observed import TaxonomyObserved
from reconciler.kinds.taxonomy.observing import observe_taxonomy
from reconciler.kinds.taxonomy.planning import plan_taxonomy
from reconciler.kinds.taxonomy.pulling import check_pullable, pull_taxonomy
from reconciler.kinds.taxonomy.rollback import rollback_taxonomy
from reconciler.kinds.taxonomy.steps import STEP_MODELS
from reconciler.specs import Resource
from reconciler.store import ResourceRecord


def taxonomy_check(_resource: Resource, planned: Planned, _context: Context) -> CheckResult:
    """The `taxonomy` check: every target carries the current version and parses (a plan
    made now has nothing to do)."""
    if planned.action == "noop":
        return CheckResult("taxonomy", "Healthy", "every target carries the current version")
    return CheckResult("taxonomy", "Degraded", planned.reason)


class TaxonomyController:
    """Observe each target's file, merge per term, commit per target, roll back versions."""

    kind: ClassVar[str] = "Taxonomy"
    spec_model: ClassVar[type[BaseModel]] = TaxonomySpec
    step_models: ClassVar[Mapping[str, type[BaseModel]]] = STEP_MODELS
    checks: ClassVar[Mapping[str, CheckFunction]] = {"taxonomy": taxonomy_check}
    activity: ClassVar[Activity] = "sync"
    heals_by_rollback: ClassVar[bool] = False  # rolled back on request only

    def facts(self, record: ResourceRecord) -> RecordFacts:
        """A taxonomy deploys nothing: no facts beyond the record's own."""
        return RecordFacts()

    def claims(self, resource: Resource) -> dict[str, str]:
        """Every target file: one taxonomy per file."""
        targets = spec_of(resource).targets
        return {f"the file {t.unit}": f"spec.targets[{i}].path" for i, t in enumerate(targets)}

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        """Read every target's file at its branch tip, and the version last applied to it."""
        with collector_paused():
            return observe_taxonomy(resource.address, spec_of(resource), context)

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        """Pure planning, see planning.py."""
        assert isinstance(observed, TaxonomyObserved)
        with collector_paused():
            return plan_taxonomy(resource.name, spec_of(resource), observed, last_applied)

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        """Commit one target's merged file."""
        with collector_paused():
            return apply_target(resource, spec_of(resource), action, context)

    def rollback(
        self, resource: Resource, record: ResourceRecord, to: str | None, context: Context
    ) -> ActionResult:
        """Re-apply an earlier version to every target (the engine then pins it)."""
        with collector_paused():
            return rollback_taxonomy(resource, spec_of(resource), record, to, context)

    def pull(
        self, resource: Resource, target: str | None, context: Context, write: bool
    ) -> PullReport:
        """Take the downstream edits of every target, or of the one `target` names (its
        position in spec.targets or its repo), into the spec file; see pulling.py."""
        check_pullable(resource, context.spec_commit)
        chosen = _targets(spec_of(resource), target)
        return pull_taxonomy(resource, chosen, context, write=write)


def spec_of(resource: Resource) -> TaxonomySpec:
    """The resource's spec, typed."""
    assert isinstance(resource.spec, TaxonomySpec)
    return resource.spec


def _targets(spec: TaxonomySpec, wanted: str | None) -> list[TargetSpec]:
    if wanted is None:
        return list(spec.targets)
    if wanted.isdigit() and int(wanted) < len(spec.targets):
        return [spec.targets[int(wanted)]]
    found = [t for t in spec.targets if wanted in (t.repo, t.unit)]
    if not found:
        known = ", ".join(f"{i}: {t.unit}" for i, t in enumerate(spec.targets))
        raise UnknownTarget(f"no target {wanted!r} (targets: {known})")
    return found
