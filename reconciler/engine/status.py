"""Sync and health of resources in Argo CD's vocabulary, from a fresh plan and the store."""

from __future__ import annotations

from typing import Any

from reconciler.engine.plans import Change, Plan
from reconciler.store import Observation, ResourceRecord, Store, now


def sync_of(change: Change) -> str:
    """Synced when nothing is to be done and nothing was skipped, Unknown when observation
    failed, else OutOfSync (a ref `conflictStrategy: skip` leaves still differs)."""
    if change.fingerprint is None and change.action == "blocked":
        return "Unknown"
    if change.action == "noop" and not any(n.get("op") == "skip" for n in change.notes):
        return "Synced"
    return "OutOfSync"


def explained(change: Change) -> str:
    """The change's reason, with the first blocked step's reason when it does not say it."""
    blocked = next((n for n in change.notes if n.get("op") == "blocked"), None)
    if blocked is None or str(blocked.get("reason")) in change.reason:
        return change.reason
    return f"{change.reason}: {blocked.get('reason')}"


def waiting(change: Change) -> bool:
    """Blocked only until another resource is ready, what runs now being healthy (an
    Environment on those it requires): the kind says so. Progressing, not Degraded: no
    incident, no alert."""
    return change.action == "blocked" and change.health == "Progressing"


def health_of(change: Change, record: ResourceRecord | None) -> str:
    """Degraded when blocked, the last apply failed or the kind found what runs broken;
    Missing before the first apply; Progressing while only waiting for another resource."""
    if record and record.outcome in ("failed", "partial"):
        return "Degraded"
    if waiting(change):
        return "Progressing"
    if change.action == "blocked" or change.health == "Degraded":
        return "Degraded"
    if record is None and change.action == "create":
        return "Missing"
    return "Healthy"


def observation_of(change: Change, record: ResourceRecord | None) -> Observation:
    """The observation cache row for a planned change."""
    return Observation(
        address=change.address,
        observed_at=now(),
        fingerprint=change.fingerprint or "",
        sync=sync_of(change),
        health=health_of(change, record),
        message=explained(change),
        data={"action": change.action, "steps": len(change.steps)},
    )


WATCH_EVENTS = "watch: reconcile"


def watch_problem(store: Store) -> str | None:
    """The error of the last reconcile a watcher could not carry out (a spec that does not
    validate, the lock held, ...) while no later one succeeded; None otherwise."""
    event = store.last_event(WATCH_EVENTS)
    if event is None or event["level"] != "error":
        return None
    return f"{event['message']} (at {event['at']}; the last good state keeps running)"


def clear_watch_problem(store: Store, trigger: str) -> None:
    """Specs loaded and the lock held (by watch, apply or heal): what kept the watcher from
    reconciling is over, so `status` stops warning (a watcher still failing says so again)."""
    if watch_problem(store) is not None:
        store.add_event("info", f"{WATCH_EVENTS} resolved: {trigger} loaded the specs and ran")


STATUS_MESSAGE_CHARS = 500


def _bounded(message: str) -> str:
    """One line of at most STATUS_MESSAGE_CHARS for `status`; `history` keeps the whole text."""
    flat = " ".join(message.split())
    if len(flat) <= STATUS_MESSAGE_CHARS:
        return flat
    return flat[: STATUS_MESSAGE_CHARS - 40].rstrip() + "… (full text: `reconciler history`)"


def status_rows(plan: Plan, store: Store) -> list[dict[str, Any]]:
    """`status --json`: one row per resource."""
    rows = []
    for change in plan.changes:
        record = store.resource(change.address)
        if change.action == "delete":
            sync, health = "OutOfSync", "Missing"
        else:
            sync, health = sync_of(change), health_of(change, record)
        message = explained(change)
        if record and record.outcome in ("failed", "partial") and record.message:
            # What blocks it now comes first; the last apply's failure still says how it ended.
            failure = f"last apply {record.outcome}: {record.message}"
            message = f"{message}; {failure}" if change.action == "blocked" else failure
        rows.append(
            {
                "address": change.address,
                "sync": sync,
                "health": health,
                "message": _bounded(message),
                "last_applied_at": record.last_applied_at if record else None,
                "revision": record.revision_id if record else None,
                "pinned": record.pinned if record else None,
            }
        )
    return rows
