"""Making a plan: load specs, observe every resource (in parallel), plan each one purely."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from pydantic import BaseModel

from reconciler.engine.graph import dependencies, ordered, with_dependencies
from reconciler.engine.plans import Change, Plan
from reconciler.engine.sources import load_specs
from reconciler.engine.specdiff import changed_fields
from reconciler.engine.status import observation_of
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError
from reconciler.kinds.base import Action, Context, ResourcePlan, fingerprint
from reconciler.specs import Resource, SpecSet
from reconciler.specs.filecache import FileCache
from reconciler.store import ResourceRecord


def load(workspace: Workspace, files: FileCache | None = None) -> SpecSet:
    """Load and validate the specs (graph included); remember their secrets for redaction.
    `files` (a watcher's) spares parsing the files that did not change since its last load."""
    specs = load_specs(
        workspace.specs,
        workspace.registry.spec_models(),
        workspace.state_dir / "cache",
        workspace.git,
        files,
    )
    # Resources an earlier load of `files` gave are the same objects: their secrets are known.
    for resource in specs.resources if files is None else files.take_fresh():
        for secret in resource.secrets():
            workspace.redact.add(secret)
    dependencies(specs, workspace.registry)
    return specs


def make_plan(workspace: Workspace, specs: SpecSet, targets: list[str] | None = None) -> Plan:
    """Observe and plan every (targeted) resource; record observations, change nothing else."""
    graph = dependencies(specs, workspace.registry)
    serial = workspace.store.serial()
    records = _records(workspace, graph, targets or [])
    chosen = _chosen(graph, records, targets or [])
    resources = specs.by_address()
    order = [a for a in ordered(graph) if a in chosen]
    context = workspace.context(specs)
    with ThreadPoolExecutor(max_workers=max(1, workspace.parallelism)) as pool:
        changes = list(
            pool.map(
                lambda a: _plan_resource(workspace, context, resources[a], records.get(a)), order
            )
        )
    for change in changes:
        record = records.get(change.address)
        workspace.store.save_observation(observation_of(change, record))
    gone = sorted(a for a in records if a not in resources and a in chosen)
    changes += [_forget(records[a]) for a in gone]
    return Plan(
        source=specs.source,
        commit=specs.commit,
        digest=specs.digest,
        state_serial=serial,
        changes=tuple(changes),
        targets=tuple(targets or ()),
    )


def hold_drift(workspace: Workspace, plan: Plan, specs: SpecSet) -> tuple[Plan, list[str]]:
    """The plan with the drift of `driftPolicy: warn|ignore` resources held back (noop), and
    one warning per held `warn` change. Drift: a change of a resource whose spec is the one
    last applied (a new or edited spec is always applied)."""
    resources = specs.by_address()
    kept: list[Change] = []
    warnings: list[str] = []
    for change in plan.changes:
        resource = resources.get(change.address)
        policy = resource.drift_policy if resource else "correct"
        if policy == "correct" or change.action == "noop":
            kept.append(change)
            continue
        record = workspace.store.resource(change.address)
        drift = (
            record is not None and resource is not None and record.spec_digest == resource.digest
        )
        if not drift:
            kept.append(change)
            continue
        if policy == "warn":
            warnings.append(
                f"{change.address}: drift not corrected (driftPolicy warn): {change.reason}"
            )
        reason = f"drift left alone (driftPolicy {policy}): {change.reason}"
        kept.append(replace(change, action="noop", reason=reason, actions=(), notes=()))
    return replace(plan, changes=tuple(kept)), warnings


def replan(workspace: Workspace, context: Context, address: str) -> Change:
    """Observe and plan one resource again (its dependencies just changed the world);
    `context` is the run's, built once (building it indexes every resource)."""
    resource = context.resources[address]
    record = workspace.store.resource(address)
    change = _plan_resource(workspace, context, resource, record)
    workspace.store.save_observation(observation_of(change, workspace.store.resource(address)))
    return change


def observe(workspace: Workspace, context: Context, resource: Resource) -> BaseModel:
    """The controller's observation of one resource."""
    controller = workspace.registry[resource.kind]
    return controller.observe(resource, context)


def _records(
    workspace: Workspace, graph: dict[str, set[str]], targets: list[str]
) -> dict[str, ResourceRecord]:
    """The stored records a plan needs: every one, or with targets only those of the
    targets and their dependencies (a --target plan reads what it plans, not the whole set)."""
    if not targets:
        return {r.address: r for r in workspace.store.resources()}
    wanted = with_dependencies(graph, targets) | set(targets)
    found = {a: workspace.store.resource(a) for a in sorted(wanted)}
    if any(t not in graph and found[t] is None for t in targets):  # for the message
        return {r.address: r for r in workspace.store.resources()}
    return {a: r for a, r in found.items() if r is not None}


def _chosen(
    graph: dict[str, set[str]], records: dict[str, ResourceRecord], targets: list[str]
) -> set[str]:
    if not targets:
        return set(graph) | set(records)
    unknown = [t for t in targets if t not in graph and t not in records]
    if unknown:
        known = ", ".join(sorted(set(graph) | set(records))) or "none"
        raise ReconcilerError(f"--target {unknown[0]}: no such resource (known: {known})")
    return with_dependencies(graph, targets)


def _plan_resource(
    workspace: Workspace, context: Context, resource: Resource, record: ResourceRecord | None
) -> Change:
    controller = workspace.registry[resource.kind]
    try:
        observed = observe(workspace, context, resource)
    except ReconcilerError as error:
        reason = workspace.redact(f"cannot observe: {error}")
        verdict = ResourcePlan("blocked", reason, notes=({"op": "blocked", "reason": reason},))
        return _change(resource, verdict, None)
    if record is not None and record.pinned and record.spec_digest == resource.digest:
        reason = (
            f"pinned by a rollback to {record.pinned}; a change of the spec or "
            f"`rollback {resource.address} --unpin` releases it"
        )
        return _change(resource, ResourcePlan("noop", reason), fingerprint(observed))
    verdict = controller.plan(resource, observed, record)
    change = _change(resource, verdict, fingerprint(observed))
    if record is not None and record.spec_digest != resource.digest:
        fields = changed_fields(record.spec, resource.public_dict())
        change = replace(change, reason=f"{change.reason} (spec changed: {', '.join(fields)})")
    return change


def _change(resource: Resource, verdict: ResourcePlan, observed: str | None) -> Change:
    return Change(
        address=resource.address,
        kind=resource.kind,
        name=resource.name,
        action=verdict.action,
        reason=verdict.reason,
        actions=verdict.actions,
        notes=verdict.notes,
        fingerprint=observed,
        health=verdict.health,
        known=verdict.known,
    )


def _forget(record: ResourceRecord) -> Change:
    reason = "removed from the specs: reconciler stops managing it; nothing is deleted"
    step = {"op": "forget", "unit": record.address, "reason": reason}
    return Change(
        address=record.address,
        kind=record.kind,
        name=record.name,
        action="delete",
        reason=reason,
        actions=(Action(record.address, (step,)),),
    )
