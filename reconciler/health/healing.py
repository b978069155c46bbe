"""Remediation: per incident, the policy's steps in order, each within its own limits.

An incident opens when a resource under a policy turns Degraded, Missing or Unknown and
closes when it is Healthy (or Progressing) again. Its cursor (step, attempts, not-before
time) lives in the store, so backoff holds across restarts. Steps: `retry` and `resync`
re-apply the resource (retry with exponential backoff and jitter, `attempts` times;
resync once), `rollback` returns an Environment to its previous healthy release at most
once per failed commit, `escalate` sends one alert per incident and one on recovery.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.engine.applying import locked_apply
from reconciler.engine.planning import make_plan
from reconciler.engine.rollback import rollback
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError
from reconciler.health.alerts import send_alert
from reconciler.health.kind import policy_spec
from reconciler.health.model import HealthPolicySpec, RemediationStep
from reconciler.health.policies import UNHEALTHY, HealthReport, ResourceHealth, policies
from reconciler.kinds.base import Checker
from reconciler.kinds.registry import Registry
from reconciler.specs import SpecSet
from reconciler.store.clock import parse_stamp, stamp, utc_now
from reconciler.store.health import HealthRecords, Incident


@dataclass(frozen=True)
class HealAction:
    """What heal did (or would do) for one resource."""

    policy: str
    address: str
    step: str  # retry | resync | rollback | escalate | recover | none
    attempt: int
    outcome: str  # done | failed | skipped | waiting | due | exhausted | recovered
    message: str

    def to_json(self) -> dict[str, Any]:
        """A row of `heal --json`-like output."""
        return dict(self.__dict__)


def heal(
    workspace: Workspace,
    specs: SpecSet,
    report: HealthReport,
    dry_run: bool = False,
    lock_timeout: float = 30.0,
) -> list[HealAction]:
    """Act on `report`: open/close incidents, run (or list) the remediation due now."""
    healer = _Healer(workspace, specs, dry_run, lock_timeout)
    return [a for health in report.resources if (a := healer.handle(health)) is not None]


def next_due(workspace: Workspace) -> datetime | None:
    """The earliest backoff deadline of an open incident (watch wakes up for it)."""
    stamps = [i.next_at for i in HealthRecords(workspace.store).open_incidents() if i.next_at]
    return min((parse_stamp(s) for s in stamps), default=None)


class _Healer:
    def __init__(
        self, workspace: Workspace, specs: SpecSet, dry_run: bool, lock_timeout: float
    ) -> None:
        self.workspace = workspace
        self.specs = specs
        self.dry_run = dry_run
        self.lock_timeout = lock_timeout
        self.records = HealthRecords(workspace.store)
        self.policies = {p.name: policy_spec(p) for p in policies(specs)}

    def handle(self, health: ResourceHealth) -> HealAction | None:
        spec = self.policies.get(health.policy)
        if spec is None or health.status == "Suspended":
            return None
        incident = self.records.open_incident(health.policy, health.address)
        if health.status not in UNHEALTHY:
            return self._recover(spec, incident, health) if incident else None
        if incident is None:
            if self.dry_run:
                incident = Incident(
                    0, health.policy, health.address, "", None, "open", "", 0, 0, None, None
                )
            else:
                incident = self.records.create_incident(
                    health.policy, health.address, health.message
                )
        return self._step(spec, incident, health)

    def _step(
        self, spec: HealthPolicySpec, incident: Incident, health: ResourceHealth
    ) -> HealAction:
        index, attempts = incident.step, incident.attempts
        skipped: list[str] = []
        while index < len(spec.remediation):
            step = spec.remediation[index]
            why = self._not_applicable(step, incident)
            if why is None and attempts < _limit(step):
                break
            if why:
                skipped.append(f"{step.name}: {why}")
            index, attempts = index + 1, 0
        moved = (index, attempts) != (incident.step, incident.attempts)
        exhausted = index >= len(spec.remediation)
        if (moved or (exhausted and incident.next_at)) and not self.dry_run:
            next_at = None if exhausted else incident.next_at
            self.records.advance(incident.id, index, attempts, next_at, health.message)
        if exhausted:
            note = "; ".join(skipped) or "every remediation step ran"
            return self._action(health, "none", attempts, "exhausted", f"{note}; awaiting recovery")
        step = spec.remediation[index]
        if incident.next_at and parse_stamp(incident.next_at) > utc_now():
            return self._action(
                health, step.name, attempts, "waiting", f"not before {incident.next_at}"
            )
        if self.dry_run:
            return self._action(health, step.name, attempts + 1, "due", health.message)
        ok, message, subject = self._run(step, incident, health)
        attempts += 1
        self.records.add_attempt(
            incident, step.name, attempts, "done" if ok else "failed", message, subject
        )
        self.records.advance(
            incident.id, index, attempts, self._next_at(step, attempts), health.message
        )
        return self._action(health, step.name, attempts, "done" if ok else "failed", message)

    def _next_at(self, step: RemediationStep, attempts: int) -> str | None:
        if step.retry is None or attempts >= step.retry.attempts:
            return None  # the next step need not wait for a retry that will not come
        delay = step.retry.delay(attempts, random.random())
        return stamp(utc_now() + timedelta(seconds=delay))

    def _not_applicable(self, step: RemediationStep, incident: Incident) -> str | None:
        if step.escalate is not None and incident.alerted_at:
            return "alert already sent for this incident"
        if step.rollback is None:
            return None
        if not _heals_by_rollback(self.workspace.registry, _kind(incident.address)):
            return "only " + " and ".join(_rollback_kinds(self.workspace.registry)) + " roll back"
        subject = self._failed_commit(incident.address)
        if subject and self.records.done_before(incident.address, "rollback", subject):
            return f"already rolled back from {subject[:7]} once (no rollback loops)"
        return None

    def _run(
        self, step: RemediationStep, incident: Incident, health: ResourceHealth
    ) -> tuple[bool, str, str | None]:
        if step.escalate is not None:
            ok, message = send_alert(
                step.escalate, _alert("incident", incident, health), self.workspace.redact
            )
            if ok:
                self.records.mark_alerted(incident.id)
            return ok, message, None
        if step.rollback is not None:
            subject = self._failed_commit(incident.address)
            try:
                result = rollback(self.workspace, incident.address, None, self.lock_timeout)
            except ReconcilerError as error:
                return False, self.workspace.redact(str(error)), subject
            return result.outcome == "done", result.message, subject
        return (*self._reapply(incident.address), None)

    def _reapply(self, address: str) -> tuple[bool, str]:
        def prepare() -> Any:
            return make_plan(self.workspace, self.specs, [address]), self.specs

        try:
            plan, report = locked_apply(
                self.workspace, prepare, lambda _p: True, self.lock_timeout, trigger="heal"
            )
        except ReconcilerError as error:
            return False, self.workspace.redact(str(error))
        if report is None or not plan.pending:
            return True, "nothing to re-apply"
        failed = [f"{a.unit}: {a.message}" for a in report.actions if a.outcome != "done"]
        if report.ok:
            return True, f"re-applied {len(report.actions)} action(s)"
        return False, "; ".join(failed + report.blocked) or "re-apply failed"

    def _failed_commit(self, address: str) -> str | None:
        record = self.workspace.store.resource(address)
        controller = self.workspace.registry[_kind(address)]
        if record is None or not isinstance(controller, Checker):
            return None
        return controller.facts(record).failed_commit

    def _recover(
        self, spec: HealthPolicySpec, incident: Incident, health: ResourceHealth
    ) -> HealAction:
        if self.dry_run:
            return self._action(health, "recover", 0, "due", "healthy again: the incident closes")
        self.records.close_incident(incident.id, health.message)
        notes = [f"incident {incident.id} resolved"]
        if incident.alerted_at:
            for step in spec.remediation:
                if step.escalate is not None:
                    alert = _alert("recovered", incident, health)
                    ok, message = send_alert(step.escalate, alert, self.workspace.redact)
                    self.records.add_attempt(
                        incident, "escalate", 0, "recovered" if ok else "failed", message
                    )
                    notes.append(message)
        return self._action(health, "recover", 0, "recovered", "; ".join(notes))

    def _action(
        self, health: ResourceHealth, step: str, attempt: int, outcome: str, message: str
    ) -> HealAction:
        return HealAction(
            health.policy, health.address, step, attempt, outcome, self.workspace.redact(message)
        )


def _kind(address: str) -> str:
    return address.partition("/")[0]


def _heals_by_rollback(registry: Registry, kind: str) -> bool:
    controller = registry[kind] if kind in registry.kinds() else None
    return isinstance(controller, Checker) and controller.heals_by_rollback


def _rollback_kinds(registry: Registry) -> list[str]:
    """The kinds the `rollback` remediation applies to, in the plural (`Environments`)."""
    return [f"{kind}s" for kind in registry.kinds() if _heals_by_rollback(registry, kind)]


def _limit(step: RemediationStep) -> int:
    if step.retry is not None:
        return step.retry.attempts
    return 3 if step.escalate is not None else 1  # an alert that could not be delivered is retried


def _alert(event: str, incident: Incident, health: ResourceHealth) -> dict[str, Any]:
    return {
        "event": event,
        "incident": incident.id,
        "policy": incident.policy,
        "address": incident.address,
        "status": health.status,
        "message": health.message,
        "failing": health.failing,
        "issues": health.issues,
        "opened_at": incident.opened_at,
        "at": stamp(utc_now()),
    }
