"""`rollback ADDR [--to X]`: a kind that can go back does so under the lock, and is pinned."""

from __future__ import annotations

from dataclasses import replace

from reconciler.engine.planning import load
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError
from reconciler.kinds.base import ActionResult, Rollbacker
from reconciler.specs import SpecSet
from reconciler.store import ResourceRecord, now


def rollback(
    workspace: Workspace, address: str, to: str | None, lock_timeout: float
) -> ActionResult:
    """Return `address` to an earlier revision (`to`, or the kind's default) and pin it there."""
    store = workspace.store
    note = store.lock.acquire(f"rollback {address}", lock_timeout)
    try:
        if note:
            store.add_event("warning", note)
        return _rollback(workspace, load(workspace), address, to)
    finally:
        store.lock.release()


def _rollback(workspace: Workspace, specs: SpecSet, address: str, to: str | None) -> ActionResult:
    """The rollback itself, under the lock: journalled, recorded, the revision finished."""
    store = workspace.store
    resource = specs.by_address().get(address)
    record = store.resource(address)
    if resource is None or record is None:
        raise ReconcilerError(f"{address}: no applied resource of that address to roll back")
    controller = workspace.registry[resource.kind]
    if not isinstance(controller, Rollbacker):
        raise ReconcilerError(f"{resource.kind} resources cannot be rolled back")
    revision = store.begin_revision("rollback", specs.source, specs.commit, specs.digest)
    entry = store.journal_add(revision, address, "rollback", [{"op": "rollback", "to": to}])
    store.journal_start(entry)
    try:
        result = controller.rollback(resource, record, to, workspace.context(specs))
    except ReconcilerError as error:  # refused before anything changed: record stays as is
        message = workspace.redact(str(error))
        store.record_result(entry, "failed", 1, message, {}, None, [])
        store.finish_revision(revision, "failed", {})
        raise ReconcilerError(f"rollback {address}: {message}") from None
    result = result.redacted(workspace.redact)
    updated = _rolled_back(record, result, revision)
    history = {**result.history, "revision": revision, "outcome": result.outcome}
    status = "done" if result.outcome == "done" else "failed"
    store.record_result(entry, status, 1, result.message, result.history, updated, [history])
    store.finish_revision(revision, "success" if status == "done" else "failed", {})
    return result


def _rolled_back(record: ResourceRecord, result: ActionResult, revision: int) -> ResourceRecord:
    """The resource's record after the rollback: its state, outcome and (if done) pin."""
    state = dict(record.state)
    if isinstance(result.state, dict):
        state.update(result.state)
    return replace(
        record,
        state=state,
        revision_id=revision,
        last_applied_at=now(),
        outcome=result.outcome,
        message=result.message,
        pinned=result.pin if result.outcome == "done" else record.pinned,
    )


def unpin(workspace: Workspace, address: str) -> str:
    """Release a rollback's pin so the next apply follows the spec again."""
    record = workspace.store.resource(address)
    if record is None:
        raise ReconcilerError(f"{address} is not in the state store")
    if not record.pinned:
        return f"{address} is not pinned"
    workspace.store.set_pin(address, None)
    return f"{address} is no longer pinned (was: {record.pinned}); the next apply follows the spec"
