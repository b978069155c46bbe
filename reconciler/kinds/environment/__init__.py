"""The Environment kind: a git ref deployed as releases, switched atomically, verified,
rolled back automatically, gated on the environments it requires."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel

from reconciler.errors import PermanentError
from reconciler.kinds.base import (
    Action,
    ActionResult,
    Activity,
    CheckFunction,
    Context,
    RecordFacts,
    ResourcePlan,
)
from reconciler.kinds.environment.checking import deployment_check, deployment_facts
from reconciler.kinds.environment.deploying import (
    Deploy,
    confirm,
    deploy,
    record_release,
    refuse_unsafe,
    switch_to,
)
from reconciler.kinds.environment.manifests import read_manifest
from reconciler.kinds.environment.model import EnvironmentSpec
from reconciler.kinds.environment.observing import (
    EnvironmentObserved,
    observe_environment,
    source_cache,
)
from reconciler.kinds.environment.planning import plan_environment
from reconciler.kinds.environment.releases import Layout, release_number
from reconciler.kinds.environment.steps import STEP_MODELS
from reconciler.specs import Resource
from reconciler.store import ResourceRecord, now


class EnvironmentController:
    """Observe links and manifests, plan a deploy, run it; roll back on request; answer the
    `deployment` check and heal by rollback."""

    kind: ClassVar[str] = "Environment"
    spec_model: ClassVar[type[BaseModel]] = EnvironmentSpec
    step_models: ClassVar[Mapping[str, type[BaseModel]]] = STEP_MODELS
    checks: ClassVar[Mapping[str, CheckFunction]] = {"deployment": deployment_check}
    activity: ClassVar[Activity] = "deploy"
    heals_by_rollback: ClassVar[bool] = True

    def references(self, resource: Resource) -> dict[str, str]:
        """Required environments, and the Mirror a source names."""
        spec = _spec(resource)
        found = {f"Environment/{name}": "spec.requires" for name in spec.requires}
        if spec.source.mirror:
            found[f"Mirror/{spec.source.mirror}"] = "spec.source.mirror"
        return found

    def claims(self, resource: Resource) -> dict[str, str]:
        """The target directory: one environment's releases and `current` per directory."""
        return {f"the directory {_spec(resource).target.path}": "spec.target.path"}

    def facts(self, record: ResourceRecord) -> RecordFacts:
        """The last deploy, the commit running now, the commit a rollback moves away from."""
        return deployment_facts(record)

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        """Resolve the ref; read `current`, the releases and their manifests."""
        return observe_environment(resource, context)

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        """Pure: see planning.py."""
        assert isinstance(observed, EnvironmentObserved)
        spec = _spec(resource)
        unit_state = last_applied.state.get(spec.target.path) if last_applied else None
        return plan_environment(resource.name, spec, observed, unit_state, resource.digest)

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        """Deploy the planned commit as a new release (or confirm one a killed apply left)."""
        spec = _spec(resource)
        if action.steps[0]["op"] == "confirm":
            state = _unit_state(resource, context)
            return confirm(resource.name, spec, action, context, state, resource.digest)
        cache = source_cache(resource, context)
        sha = str(action.steps[0]["sha"])
        cache.ensure_objects([sha])
        return deploy(
            resource.name,
            spec,
            action,
            context,
            cache.path,
            _unit_state(resource, context),
            resource.digest,
        )

    def rollback(
        self, resource: Resource, record: ResourceRecord, to: str | None, context: Context
    ) -> ActionResult:
        """Switch back to release `to` (default: the previous healthy one), re-activate, verify."""
        spec = _spec(resource)
        state = dict(record.state.get(spec.target.path) or {})
        run = Deploy(resource.name, spec, context, state)
        refuse_unsafe(run.layout, spec.target.path)
        current = run.layout.current_release()
        target = _rollback_target(run.layout, state, current, to)
        manifest = read_manifest(run.layout, target) or {}
        sha = str(manifest.get("sha") or "")
        started = time.monotonic()
        switch_to(run, target)
        slot = run.layout.active_slot()
        outcome = run.hooks(spec.activate, target, sha, slot)
        if outcome.ok:
            outcome = run.hooks(spec.verify, target, sha, slot)
        if not outcome.ok and current is not None:
            switch_to(run, current)
            message = f"release {target} failed its checks ({outcome.detail}); {current} stays"
            return ActionResult("failed", message, {spec.target.path: state}, {"summary": message})
        state.update(current=target, current_sha=sha)
        entry = {
            "name": target,
            "sha": sha,
            "at": now(),
            "outcome": f"rolled back from {current}",
            "duration": round(time.monotonic() - started, 3),
            "ref": spec.source.ref,
        }
        record_release(state, entry)
        message = f"rolled back from {current} to release {target} ({sha[:7]})"
        return ActionResult(
            "done",
            message,
            {spec.target.path: state},
            {"summary": message, "release": entry},
            pin=f"release {target}",
        )


def _rollback_target(
    layout: Layout, state: dict[str, Any], current: str | None, to: str | None
) -> str:
    names = layout.names()
    if to is not None:
        match = [n for n in names if str(release_number(n)) == to.strip() or n == to.strip()]
        if not match:
            raise PermanentError(f"no release {to} on disk (have: {', '.join(names) or 'none'})")
        return match[0]
    healthy = [n for n in state.get("healthy", []) if n != current and n in names]
    if not healthy:
        raise PermanentError("no earlier healthy release to roll back to")
    return str(healthy[-1])


def _unit_state(resource: Resource, context: Context) -> dict[str, Any]:
    record = context.store.resource(resource.address)
    unit = record.state.get(_spec(resource).target.path) if record else None
    return dict(unit) if isinstance(unit, dict) else {}


def _spec(resource: Resource) -> EnvironmentSpec:
    assert isinstance(resource.spec, EnvironmentSpec)
    return resource.spec
