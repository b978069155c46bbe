"""Applying a plan: lock, journal each action, run actions in parallel in dependency order,
retry temporary failures with backoff, record every outcome, close the revision."""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.graph import dependencies
from reconciler.engine.planning import replan
from reconciler.engine.plans import Change, Plan
from reconciler.engine.status import clear_watch_problem
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError, TemporaryError
from reconciler.kinds.base import Action, ActionResult
from reconciler.specs import Resource, SpecSet
from reconciler.store import ResourceRecord, Store, now

_RANK = {"done": 0, "blocked": 1, "partial": 2, "failed": 3}
_LOST_LOCK = (
    "because this apply no longer holds the state lock (removed by `state unlock --force`; "
    "another apply may hold it now)"
)


@dataclass(frozen=True)
class ActionReport:
    """The outcome of one action, as shown to the user."""

    address: str
    unit: str
    outcome: str
    message: str
    attempts: int


@dataclass
class ApplyReport:
    """Everything one apply did."""

    revision: int | None = None
    actions: list[ActionReport] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop request left actions unstarted

    @property
    def ok(self) -> bool:
        """True when every action succeeded and nothing stayed blocked or unstarted."""
        return (
            not self.blocked and not self.stopped and all(a.outcome == "done" for a in self.actions)
        )


class Listener:
    """Hooks for progress display; the defaults do nothing."""

    def planned(self, total_actions: int) -> None:
        """Called once with the number of actions about to run."""

    def started(self, address: str, unit: str) -> None:
        """An action started."""

    def finished(self, report: ActionReport) -> None:
        """An action finished."""


def execute(
    workspace: Workspace,
    plan: Plan,
    specs: SpecSet,
    listener: Listener | None = None,
    replan: Callable[[str], Change] | None = None,
    trigger: str = "apply",
    should_stop: Callable[[], bool] | None = None,
) -> ApplyReport:
    """Apply `plan` (the caller holds the lock). Independent resources never stop each other.

    With `replan`, a resource whose dependencies changed during this apply is planned again
    once they are done (staging deployed, then production sees it); a saved plan has none.
    """
    listener = listener or Listener()
    report = ApplyReport()
    store = workspace.store
    interrupted = store.mark_interrupted()
    if interrupted:
        note = f"{interrupted} actions of an earlier apply were interrupted; this apply converges"
        store.add_event("warning", note)
        report.notes.append(note)
    resources = specs.by_address()
    records = _records(store, plan)
    graph = dependencies(specs, workspace.registry)
    work = _scheduled(plan, graph, replan is not None)
    refresh = [c for c in plan.changes if c not in work and _needs_record(c, resources, records)]
    if not work and not refresh:
        report.blocked = _blocked(plan.changes)
        return report
    report.revision = store.begin_revision(trigger, plan.source, plan.commit, plan.digest)
    run = _Run(workspace, specs, report, resources, records, listener, replan, should_stop)
    for change in refresh:
        run.record_without_actions(change)
    run.run(work, graph)
    report.blocked = _blocked([run.final.get(c.address, c) for c in plan.changes])
    outcome = (
        "success"
        if report.ok
        else (
            "failed"
            if report.actions and all(a.outcome == "failed" for a in report.actions)
            else "partial"
        )
    )
    store.finish_revision(report.revision, outcome, plan.summary())
    return report


def _records(store: Store, plan: Plan) -> dict[str, ResourceRecord]:
    """The stored records of the plan's resources (all of them, or with targets only theirs:
    a targeted apply reads what it applies)."""
    if not plan.targets:
        return {r.address: r for r in store.resources()}
    found = {c.address: store.resource(c.address) for c in plan.changes}
    return {a: r for a, r in found.items() if r is not None}


def _scheduled(plan: Plan, graph: dict[str, set[str]], replanning: bool) -> list[Change]:
    """Changes with actions, and (when re-planning) everything downstream of them."""
    moving: set[str] = set()
    scheduled = []
    for change in plan.changes:  # the plan is in dependency order
        downstream = replanning and bool(graph.get(change.address, set()) & moving)
        if change.actions or downstream:
            moving.add(change.address)
            scheduled.append(change)
    return scheduled


def _blocked(changes: Iterable[Change]) -> list[str]:
    return [f"{c.address}: {s['reason']}" for c in changes for s in c.notes if s["op"] == "blocked"]


def _needs_record(
    change: Change, resources: dict[str, Resource], records: dict[str, ResourceRecord]
) -> bool:
    resource, record = resources.get(change.address), records.get(change.address)
    if resource is None:
        return False
    outcome = "blocked" if change.action == "blocked" else "done"
    return record is None or record.spec_digest != resource.digest or record.outcome != outcome


class _Run:
    """One apply's scheduler: submits ready actions, records results on this thread only."""

    def __init__(
        self,
        workspace: Workspace,
        specs: SpecSet,
        report: ApplyReport,
        resources: dict[str, Resource],
        records: dict[str, ResourceRecord],
        listener: Listener,
        replan: Callable[[str], Change] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.replan = replan
        self.should_stop = should_stop or (lambda: False)
        self.final: dict[str, Change] = {}  # changes as re-planned during the run
        self.ran: set[str] = set()  # resources that had actions in this run
        self.workspace = workspace
        self.context = workspace.context(specs)
        self.store = workspace.store
        self.report = report
        self.resources = resources
        self.records = records
        self.listener = listener
        self.outcomes: dict[str, str] = {}
        self.failures: dict[str, list[str]] = {}  # per resource: "unit: why" of failed actions

    def run(self, work: list[Change], graph: dict[str, set[str]]) -> None:
        """Run every action of `work`, a resource's actions only after its dependencies'."""
        remaining = {c.address: max(1, len(c.actions)) for c in work}
        waiting = list(work)
        ready: list[tuple[Change, Action, int]] = []
        running: dict[Future[tuple[ActionResult, int]], tuple[Change, Action, int]] = {}
        self.listener.planned(sum(len(c.actions) for c in work))
        parallelism = max(1, self.workspace.parallelism)
        with ThreadPoolExecutor(max_workers=parallelism) as pool:
            while waiting or ready or running:
                # A stop request, or the lock forced away (`state unlock --force`): running
                # actions finish, nothing new starts.
                lost = bool(waiting or ready) and self.store.lock.lost()
                if lost or (self.should_stop() and (waiting or ready)):
                    left = len(ready) + sum(len(c.actions) for c in waiting)
                    why = _LOST_LOCK if lost else "on request"
                    self.report.notes.append(f"stopped {why}; {left} actions not started")
                    self.report.stopped = True
                    for _change, _action, entry in ready:
                        self.store.journal_finish_unstarted(
                            entry, "the lock was forced away" if lost else "stop requested"
                        )
                    waiting, ready = [], []
                    continue
                waiting, ready = self._release(waiting, ready, remaining, graph)
                while ready and len(running) < parallelism:
                    change, action, entry = ready.pop(0)
                    self.store.journal_start(entry)
                    self.listener.started(change.address, action.unit)
                    running[pool.submit(self._attempt, change, action)] = (change, action, entry)
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    change, action, entry = running.pop(future)
                    result, attempts = future.result()
                    remaining[change.address] -= 1
                    final = remaining[change.address] == 0
                    self._record(change, action, entry, result, attempts, final)

    def _release(
        self,
        waiting: list[Change],
        ready: list[tuple[Change, Action, int]],
        remaining: dict[str, int],
        graph: dict[str, set[str]],
    ) -> tuple[list[Change], list[tuple[Change, Action, int]]]:
        still = []
        for change in waiting:
            deps = graph.get(change.address, set())
            if any(remaining.get(d, 0) for d in deps):
                still.append(change)
                continue
            failed = [d for d in deps if _RANK.get(self.outcomes.get(d, "done"), 0) >= 2]
            if self.replan is not None and deps & self.ran and not failed:
                change = self.replan(change.address)
                self.final[change.address] = change
            remaining[change.address] = len(change.actions)
            if not change.actions:
                if _needs_record(change, self.resources, self.records):
                    self.record_without_actions(change)
                continue
            self.ran.add(change.address)
            revision = self.report.revision or 0
            for action in change.actions:
                entry = self.store.journal_add(
                    revision, change.address, action.unit, list(action.steps)
                )
                if failed:
                    message = f"not applied: dependency {failed[0]} did not apply cleanly"
                    remaining[change.address] -= 1
                    final = remaining[change.address] == 0
                    self._record(change, action, entry, ActionResult("failed", message), 0, final)
                else:
                    ready.append((change, action, entry))
        return still, ready

    def _attempt(self, change: Change, action: Action) -> tuple[ActionResult, int]:
        """Runs on a worker thread: apply with retries; never raises."""
        if change.action == "delete":
            return ActionResult("done", "forgotten"), 1
        resource = self.resources.get(change.address)
        if resource is None:
            return ActionResult("failed", f"{change.address} is not in the specs"), 1
        controller = self.workspace.registry[resource.kind]
        policy = self.workspace.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return controller.apply(resource, action, self.context), attempt
            except TemporaryError as error:
                if attempt == policy.attempts:
                    return ActionResult("failed", f"{error} (after {attempt} attempts)"), attempt
                time.sleep(policy.delay(attempt, random.random()))
            except ReconcilerError as error:
                return ActionResult("failed", str(error)), attempt
            except OSError as error:  # the system said no (disk full, read-only): not a bug
                return ActionResult("failed", str(error)), attempt
            except Exception as error:  # a bug in a controller must not take the others down
                detail = {"traceback": traceback.format_exc()}
                return ActionResult("failed", f"internal error: {error!r}", history=detail), attempt
        raise AssertionError("unreachable")

    def _record(
        self,
        change: Change,
        action: Action,
        entry: int,
        result: ActionResult,
        attempts: int,
        final: bool = True,
    ) -> None:
        """Journal one action's result; the resource record is written with its last action
        (rewriting it after each of hundreds of destinations made the apply quadratic)."""
        result = result.redacted(self.workspace.redact)
        message = result.message
        worst = max(
            self.outcomes.get(change.address, "done"), result.outcome, key=_RANK.__getitem__
        )
        self.outcomes[change.address] = worst
        status = "done" if result.outcome == "done" else "failed"
        history = {
            "summary": message,
            **result.history,
            "unit": action.unit,
            "message": message,
            "revision": self.report.revision,
            "outcome": result.outcome,
        }
        if result.outcome != "done":
            self.failures.setdefault(change.address, []).append(f"{action.unit}: {message}")
        if change.action == "delete":
            self.store.record_result(entry, status, attempts, message, result.history, None, [])
            self.store.forget(change.address, self.report.revision or 0)
        else:
            record = self._updated(change, action, result, worst, message)
            self.store.record_result(
                entry,
                status,
                attempts,
                message,
                result.history,
                record if final else None,
                [history],
                address=change.address,
            )
        outcome = ActionReport(change.address, action.unit, result.outcome, message, attempts)
        self.report.actions.append(outcome)
        self.listener.finished(outcome)

    def _updated(
        self, change: Change, action: Action, result: ActionResult, outcome: str, message: str
    ) -> ResourceRecord:
        previous = self.records.get(change.address)
        state = dict(previous.state) if previous else {}
        if result.state is not None:
            state[action.unit] = result.state
        if outcome == "done" and change.notes and any(n["op"] == "blocked" for n in change.notes):
            outcome, message = "blocked", change.reason
        elif outcome != "done":
            message = "; ".join(self.failures.get(change.address, [])) or message
        return self._new_record(change, state, outcome, message)

    def record_without_actions(self, change: Change) -> None:
        """Store a resource that needed no action (first seen in sync, or blocked)."""
        previous = self.records.get(change.address)
        outcome = "blocked" if change.action == "blocked" else "done"
        record = self._new_record(change, dict(previous.state) if previous else {}, outcome)
        self.store.put_resource(record)

    def _new_record(
        self, change: Change, state: dict[str, Any], outcome: str, message: str | None = None
    ) -> ResourceRecord:
        """The resource's new record (kept for its later actions); `message` defaults to
        the change's reason."""
        resource = self.resources[change.address]
        record = ResourceRecord(
            address=change.address,
            kind=change.kind,
            name=change.name,
            spec=resource.public_dict(),
            spec_digest=resource.digest,
            state={**change.known, **state},  # what an action left wins over what was seen
            revision_id=self.report.revision,
            last_applied_at=now(),
            outcome=outcome,
            message=change.reason if message is None else message,
            pinned=_pin(self.records.get(change.address), resource),
        )
        self.records[change.address] = record
        return record


def _pin(previous: ResourceRecord | None, resource: Resource) -> str | None:
    """A rollback's pin holds until the spec changes."""
    if previous is None or previous.spec_digest != resource.digest:
        return None
    return previous.pinned


def locked_apply(
    workspace: Workspace,
    prepare: Callable[[], tuple[Plan, SpecSet]],
    confirm: Callable[[Plan], bool],
    lock_timeout: float,
    listener: Listener | None = None,
    replanning: bool = True,
    trigger: str = "apply",
    should_stop: Callable[[], bool] | None = None,
) -> tuple[Plan, ApplyReport | None]:
    """Take the lock, make (or check) the plan, ask, apply, release. None: not confirmed."""
    # The lock names what holds it (apply, watch, heal): a refused apply says who to wait for.
    note = workspace.store.lock.acquire(trigger, lock_timeout)
    try:
        if note:
            workspace.store.add_event("warning", note)
        plan, specs = prepare()
        clear_watch_problem(workspace.store, trigger)
        if plan.pending and not confirm(plan):
            return plan, None
        context = workspace.context(specs)  # once per run: it indexes every resource
        again = (lambda address: replan(workspace, context, address)) if replanning else None
        report = execute(workspace, plan, specs, listener, again, trigger, should_stop)
        if note:
            report.notes.insert(0, note)
        return plan, report
    finally:
        workspace.store.lock.release()
