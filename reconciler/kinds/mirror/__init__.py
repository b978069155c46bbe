"""The Mirror kind: git repositories mirrored from a source to destinations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import BaseModel

from reconciler.git import Remote
from reconciler.kinds.base import (
    Action,
    ActionResult,
    Activity,
    CheckFunction,
    Context,
    RecordFacts,
    ResourcePlan,
)
from reconciler.kinds.mirror.applying import apply_destination
from reconciler.kinds.mirror.model import MirrorSpec
from reconciler.kinds.mirror.observed import MirrorObserved
from reconciler.kinds.mirror.observing import observe_mirror
from reconciler.kinds.mirror.planning import plan_mirror
from reconciler.kinds.mirror.steps import STEP_MODELS
from reconciler.specs import Resource
from reconciler.store import ResourceRecord


class MirrorController:
    """Observe ref listings, plan per destination and ref, push compare-and-swap."""

    kind: ClassVar[str] = "Mirror"
    spec_model: ClassVar[type[BaseModel]] = MirrorSpec
    step_models: ClassVar[Mapping[str, type[BaseModel]]] = STEP_MODELS
    checks: ClassVar[Mapping[str, CheckFunction]] = {}  # drift and syncLag say it all
    activity: ClassVar[Activity] = "sync"
    heals_by_rollback: ClassVar[bool] = False

    def facts(self, record: ResourceRecord) -> RecordFacts:
        """A mirror deploys nothing: no facts beyond the record's own."""
        return RecordFacts()

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        """List every source and destination's refs."""
        return observe_mirror(_spec(resource), context)

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        """Pure planning, see planning.py."""
        assert isinstance(observed, MirrorObserved)
        return plan_mirror(_spec(resource), observed, last_applied)

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        """Bring one destination to its source."""
        return apply_destination(_spec(resource), action, context)

    def repository(self, resource: Resource, name: str) -> Remote:
        """The repository `name` at the Mirror's first destination (where an Environment with
        `source.mirror` deploys from)."""
        return _spec(resource).destinations[0].remote(name)


def _spec(resource: Resource) -> MirrorSpec:
    assert isinstance(resource.spec, MirrorSpec)
    return resource.spec
