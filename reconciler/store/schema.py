"""The store's schema as numbered forward migrations; a newer store is never touched."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported at run time only when a migration runs
    from sqlite_utils import Database

Migration = Callable[["Database"], None]


def _v1_initial(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("lock").create(
        {"id": int, "holder": str, "pid": int, "host": str, "command": str, "acquired_at": str},
        pk="id",
    )
    db.table("revisions").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "trigger": str,
            "specs_source": str,
            "specs_commit": str,
            "specs_digest": str,
            "outcome": str,
            "summary": str,
        },
        pk="id",
    )
    db.table("journal").create(
        {
            "id": int,
            "revision_id": int,
            "address": str,
            "unit": str,
            "steps": str,
            "status": str,
            "attempts": int,
            "started_at": str,
            "finished_at": str,
            "message": str,
            "details": str,
        },
        pk="id",
        foreign_keys=[("revision_id", "revisions", "id")],
    )
    db.table("journal").create_index(["status"])
    db.table("resources").create(
        {
            "address": str,
            "kind": str,
            "name": str,
            "spec": str,
            "spec_digest": str,
            "state": str,
            "revision_id": int,
            "last_applied_at": str,
            "outcome": str,
            "message": str,
            "pinned": str,
        },
        pk="address",
    )
    db.table("observations").create(
        {
            "address": str,
            "observed_at": str,
            "fingerprint": str,
            "sync": str,
            "health": str,
            "message": str,
            "data": str,
        },
        pk="address",
    )
    db.table("history").create(
        {"id": int, "address": str, "revision_id": int, "at": str, "entry": str}, pk="id"
    )
    db.table("history").create_index(["address"])
    db.table("events").create(
        {"id": int, "at": str, "level": str, "address": str, "message": str}, pk="id"
    )


def _v2_versions(db: Database) -> None:
    # Content a kind applied, numbered per resource from 1 (taxonomy versions, releases).
    db.table("versions").create(
        {
            "address": str,
            "version": int,
            "created_at": str,
            "digest": str,
            "content": str,
            "meta": str,
        },
        pk=("address", "version"),
    )


def _v3_health(db: Database) -> None:
    # Health check results, incidents (unhealthy spells of a resource under a policy) and
    # every remediation attempt. Not counted in the serial: checking changes no state.
    db.table("health_results").create(
        {
            "id": int,
            "at": str,
            "policy": str,
            "address": str,
            "status": str,
            "message": str,
            "report": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("health_results").create_index(["policy", "address"], if_not_exists=True)
    db.table("incidents").create(
        {
            "id": int,
            "policy": str,
            "address": str,
            "opened_at": str,
            "closed_at": str,
            "status": str,
            "message": str,
            "step": int,
            "attempts": int,
            "next_at": str,
            "alerted_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("incidents").create_index(["policy", "address", "closed_at"], if_not_exists=True)
    db.table("remediations").create(
        {
            "id": int,
            "incident_id": int,
            "at": str,
            "address": str,
            "step": str,
            "attempt": int,
            "outcome": str,
            "message": str,
            "subject": str,
        },
        pk="id",
        foreign_keys=[("incident_id", "incidents", "id")],
        if_not_exists=True,
    )
    db.table("remediations").create_index(["address", "step", "subject"], if_not_exists=True)


def _v4_lock_identity(db: Database) -> None:
    # The holder's boot id, PID namespace and start time tell a live holder in another
    # container from a dead one, its machine id a reboot from another machine of the same
    # name; the token lets a holder notice its lock was forced away.
    lock = db.table("lock")
    columns = {
        "boot_id": str,
        "pid_namespace": str,
        "start_time": int,
        "machine_id": str,
        "token": str,
    }
    for column, kind in columns.items():
        if column not in lock.columns_dict:  # idempotent, like the migrations before it
            lock.add_column(column, kind)


# A finished journal entry's duration in whole milliseconds (the store's stamps carry
# milliseconds), as metrics read it; the v5 index holds it, so the query must spell it alike.
JOURNAL_MILLISECONDS = (
    "MAX(0, CAST(round((julianday(finished_at) - julianday(started_at)) * 86400000) AS INTEGER))"
)


def _v5_retention(db: Database) -> None:
    # Metrics read durations per address from this covering index, never the journal's rows;
    # `state prune` deletes journal and history rows by revision.
    db.execute(
        "CREATE INDEX IF NOT EXISTS journal_durations ON journal"
        f"(status, address, {JOURNAL_MILLISECONDS}, started_at, finished_at)"
    )
    db.table("journal").create_index(["revision_id"], if_not_exists=True)
    db.table("history").create_index(["revision_id"], if_not_exists=True)


def _v6_version_chunks(db: Database) -> None:
    # Taxonomy versions keep their terms in shared chunks (store/contents.py), each once.
    db.execute(
        "CREATE TABLE IF NOT EXISTS version_chunks (digest TEXT PRIMARY KEY, data TEXT NOT NULL)"
    )


MIGRATIONS: list[Migration] = [
    _v1_initial,
    _v2_versions,
    _v3_health,
    _v4_lock_identity,
    _v5_retention,
    _v6_version_chunks,
]
SCHEMA_VERSION = len(MIGRATIONS)
