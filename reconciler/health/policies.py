"""Running health policies: select resources, run each check, combine into a status.

Statuses are Argo CD's: Healthy, Progressing, Degraded, Missing, Unknown, Suspended. A
resource's status is the worst of its checks, and of what the store knows (a failed last
apply is Degraded, a resource never applied is Missing). Results are recorded in the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from reconciler.engine.planning import make_plan
from reconciler.engine.plans import Change, Plan
from reconciler.engine.status import explained, health_of, waiting
from reconciler.engine.workspace import Workspace
from reconciler.health.kind import POLICY_KIND, policy_spec
from reconciler.health.model import HealthPolicySpec, KindCheck, SyncLagCheck
from reconciler.health.probes import probe
from reconciler.kinds.base import Checker, CheckResult, Planned, RecordFacts
from reconciler.specs import Resource, SpecSet
from reconciler.store import ResourceRecord
from reconciler.store.clock import parse_stamp, stamp, utc_now
from reconciler.store.health import HealthRecords

RANK = {"Healthy": 0, "Suspended": 1, "Progressing": 2, "Unknown": 3, "Missing": 4, "Degraded": 5}
UNHEALTHY = frozenset({"Degraded", "Missing", "Unknown"})


@dataclass
class ResourceHealth:
    """One resource under one policy."""

    policy: str
    address: str
    status: str
    message: str
    failing: str | None = None  # the check type that decided the status
    checks: list[CheckResult] = field(default_factory=list)
    last_sync: str | None = None
    last_deploy: str | None = None
    lag_seconds: float | None = None
    commit: str | None = None
    issues: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report row users read."""
        return {**asdict(self), "checks": [asdict(c) for c in self.checks]}


@dataclass
class HealthReport:
    """Every policy's verdict on every resource it selects."""

    resources: list[ResourceHealth]
    checked_at: str

    @property
    def status(self) -> str:
        """The worst status of any resource (Healthy when there is nothing to check)."""
        statuses = [r.status for r in self.resources] or ["Healthy"]
        return max(statuses, key=RANK.__getitem__)

    def to_json(self) -> dict[str, Any]:
        """`health --json`."""
        return {
            "status": self.status,
            "checked_at": self.checked_at,
            "resources": [r.to_json() for r in self.resources],
        }


def policies(specs: SpecSet) -> list[Resource]:
    """The HealthPolicy resources of the specs."""
    return [r for r in specs.resources if r.kind == POLICY_KIND]


def selected(policy: Resource, specs: SpecSet) -> list[Resource]:
    """The resources a policy's selector picks (never another policy)."""
    selector = policy_spec(policy).selector
    picked = []
    for resource in specs.resources:
        if resource.kind == POLICY_KIND:
            continue
        if selector.addresses and resource.address not in selector.addresses:
            continue
        if selector.kinds and resource.kind not in selector.kinds:
            continue
        if any(resource.labels.get(k) != v for k, v in selector.labels.items()):
            continue
        picked.append(resource)
    return picked


def check_health(
    workspace: Workspace, specs: SpecSet, chosen: Iterable[Resource] | None = None
) -> HealthReport:
    """Run the checks of `chosen` policies (default: all) now, record and return them."""
    chosen = list(policies(specs) if chosen is None else chosen)
    targets = sorted({r.address for p in chosen for r in selected(p, specs)})
    plan = make_plan(workspace, specs, targets) if targets else None
    records = HealthRecords(workspace.store)
    results = []
    for policy in chosen:
        for health in _policy_health(workspace, policy, specs, plan):
            health.message = workspace.redact(health.message)
            health.issues = [workspace.redact(i) for i in health.issues]
            health.checks = [replace(c, message=workspace.redact(c.message)) for c in health.checks]
            records.add_result(
                policy.name, health.address, health.status, health.message, health.to_json()
            )
            results.append(health)
    return HealthReport(results, stamp(utc_now(), "seconds"))


def _policy_health(
    workspace: Workspace, policy: Resource, specs: SpecSet, plan: Plan | None
) -> list[ResourceHealth]:
    spec = policy_spec(policy)
    resources = selected(policy, specs)
    if spec.suspend:
        return [
            ResourceHealth(policy.name, r.address, "Suspended", "policy suspended")
            for r in resources
        ]
    shared = [probe(c, policy.base_dir) for c in spec.checks if c.type in ("http", "command")]
    changes = {c.address: c for c in plan.changes} if plan else {}
    return [
        _resource_health(workspace, specs, policy.name, spec, r, changes[r.address], shared)
        for r in resources
        if r.address in changes
    ]


def _resource_health(
    workspace: Workspace,
    specs: SpecSet,
    policy: str,
    spec: HealthPolicySpec,
    resource: Resource,
    change: Change,
    shared: list[CheckResult],
) -> ResourceHealth:
    record = workspace.store.resource(resource.address)
    base = health_of(change, record)
    if change.fingerprint is None and change.action == "blocked":
        base = "Unknown"
    results = [_applied(base, change, record)]
    lag = _lag(change, record)
    for check in spec.checks:
        if isinstance(check, SyncLagCheck):
            results.append(_sync_lag(check, change, record, lag))
        elif check.type == "drift":
            results.append(_drift(change))
        elif isinstance(check, KindCheck):
            results.append(_kind_check(workspace, specs, check, resource, change))
    results += shared
    # Never applied: Missing says it all (drift and lag would only repeat it as Degraded).
    # Ties go to the later, more specific check rather than to `applied`.
    worst = (
        results[0] if base == "Missing" else max(reversed(results), key=lambda c: RANK[c.status])
    )
    facts = _facts(workspace, resource, record)
    return ResourceHealth(
        policy=policy,
        address=resource.address,
        status=worst.status,
        message=worst.message,
        failing=worst.type if worst.status != "Healthy" else None,
        checks=results,
        last_sync=record.last_applied_at if record else None,
        last_deploy=facts.last_deploy,
        lag_seconds=lag,
        commit=facts.commit,
        issues=[c.message for c in results if c.status != "Healthy"],
    )


def _applied(base: str, change: Change, record: ResourceRecord | None) -> CheckResult:
    if base == "Healthy":
        return CheckResult("applied", "Healthy", "last apply succeeded")
    if base == "Missing":
        return CheckResult("applied", "Missing", "never applied: " + explained(change))
    if base == "Unknown":
        return CheckResult("applied", "Unknown", explained(change))
    if record and record.outcome in ("failed", "partial") and record.message:
        return CheckResult("applied", base, f"last apply {record.outcome}: {record.message}")
    return CheckResult("applied", base, explained(change))


def _lag(change: Change, record: ResourceRecord | None) -> float | None:
    if change.action == "noop":
        return 0.0
    if record is None or not record.last_applied_at:
        return None
    return (utc_now() - parse_stamp(record.last_applied_at)).total_seconds()


def _sync_lag(
    check: SyncLagCheck, change: Change, record: ResourceRecord | None, lag: float | None
) -> CheckResult:
    limit = check.maxLag.total_seconds()
    if change.action == "noop":
        return CheckResult("syncLag", "Healthy", "in sync")
    if waiting(change):  # it syncs once what it requires is ready
        return CheckResult("syncLag", "Progressing", f"waiting: {explained(change)}")
    if change.action == "blocked":  # a dead source is not "catching up": nothing will sync
        return CheckResult("syncLag", "Degraded", f"cannot sync: {explained(change)}")
    if lag is None:
        return CheckResult("syncLag", "Missing", f"never synced: {explained(change)}")
    if lag > limit:
        message = f"out of sync, last sync {lag:.0f}s ago (maxLag {limit:g}s): {explained(change)}"
        return CheckResult("syncLag", "Degraded", message)
    return CheckResult("syncLag", "Progressing", f"out of sync for at most {lag:.0f}s")


def _drift(change: Change) -> CheckResult:
    if change.action == "noop":
        skipped = any(n.get("op") == "skip" for n in change.notes)
        return CheckResult("drift", "Healthy", change.reason if skipped else "matches the spec")
    if change.fingerprint is None:
        return CheckResult("drift", "Unknown", explained(change))
    if waiting(change):
        return CheckResult("drift", "Progressing", f"waiting: {explained(change)}")
    return CheckResult("drift", "Degraded", f"differs from the spec: {explained(change)}")


def _kind_check(
    workspace: Workspace, specs: SpecSet, check: KindCheck, resource: Resource, change: Change
) -> CheckResult:
    """A check only some kinds answer, asked of the resource's kind."""
    controller = workspace.registry[resource.kind]
    answer = controller.checks.get(check.type) if isinstance(controller, Checker) else None
    if answer is None:
        return CheckResult(check.type, "Healthy", check.not_applicable)
    return answer(resource, Planned(change.action, explained(change)), workspace.context(specs))


def _facts(workspace: Workspace, resource: Resource, record: ResourceRecord | None) -> RecordFacts:
    """What only the resource's kind can read from its record (the commit it runs)."""
    controller = workspace.registry[resource.kind]
    if record is None or not isinstance(controller, Checker):
        return RecordFacts()
    return controller.facts(record)
