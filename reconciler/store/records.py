"""Store: revisions, the action journal, resource state, observations, history and events."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.redaction import printable, printable_data
from reconciler.store.clock import now
from reconciler.store.database import StoreDatabase, canonical_digest, dumps, loads
from reconciler.store.locking import ApplyLock

JOURNAL_STATES = ("pending", "running", "done", "failed", "interrupted")


@dataclass(frozen=True)
class ResourceRecord:
    """What the store knows of a resource after its last apply."""

    address: str
    kind: str
    name: str
    spec: dict[str, Any]
    spec_digest: str
    state: dict[str, Any]
    revision_id: int | None
    last_applied_at: str | None
    outcome: str | None
    message: str | None
    pinned: str | None


@dataclass(frozen=True)
class Observation:
    """The last observation of a resource (a cache: writing it is not a change of state)."""

    address: str
    observed_at: str
    fingerprint: str
    sync: str
    health: str
    message: str
    data: dict[str, Any]


class Store(StoreDatabase):
    """Everything reconciler remembers, in one SQLite file."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        super().__init__(path, read_only)
        self.lock = ApplyLock(self)

    # -- revisions -------------------------------------------------------------------------
    def begin_revision(self, trigger: str, source: str, commit: str | None, digest: str) -> int:
        """Open a revision for one apply (or rollback); returns its id."""
        with self.transaction():
            cursor = self.execute(
                "INSERT INTO revisions(started_at, trigger, specs_source, specs_commit, "
                "specs_digest, outcome) VALUES (?, ?, ?, ?, ?, 'running')",
                (now(), trigger, source, commit, digest),
            )
            self.bump_serial()
            return int(cursor.lastrowid or 0)

    def finish_revision(self, revision_id: int, outcome: str, summary: dict[str, Any]) -> None:
        """Close a revision with its outcome (success, failed, partial, noop)."""
        with self.transaction():
            self.execute(
                "UPDATE revisions SET finished_at = ?, outcome = ?, summary = ? WHERE id = ?",
                (now(), outcome, dumps(printable_data(summary)), revision_id),
            )
            self.bump_serial()

    def revisions(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest revisions first."""
        rows = self.query("SELECT * FROM revisions ORDER BY id DESC LIMIT ?", (limit,))
        return [{**row, "summary": loads(row["summary"])} for row in rows]

    # -- journal ---------------------------------------------------------------------------
    def mark_interrupted(self) -> int:
        """Mark journal entries left pending/running by a dead apply; returns how many."""
        with self.transaction():
            cursor = self.execute(
                "UPDATE journal SET status = 'interrupted', finished_at = ? "
                "WHERE status IN ('pending', 'running')",
                (now(),),
            )
            self.execute(
                "UPDATE revisions SET outcome = 'interrupted', finished_at = ? "
                "WHERE outcome = 'running'",
                (now(),),
            )
            if cursor.rowcount:
                self.bump_serial()
            return cursor.rowcount

    def journal_add(
        self, revision_id: int, address: str, unit: str, steps: list[dict[str, Any]]
    ) -> int:
        """Record an action before it runs (status pending)."""
        with self.transaction():
            cursor = self.execute(
                "INSERT INTO journal(revision_id, address, unit, steps, status, attempts) "
                "VALUES (?, ?, ?, ?, 'pending', 0)",
                (revision_id, address, unit, dumps(steps)),
            )
            return int(cursor.lastrowid or 0)

    def journal_start(self, entry_id: int) -> None:
        """The action is running."""
        with self.transaction():
            self.execute(
                "UPDATE journal SET status = 'running', started_at = ? WHERE id = ?",
                (now(), entry_id),
            )

    def journal_finish_unstarted(self, entry_id: int, why: str = "stop requested") -> None:
        """An action that a stop request kept from starting: interrupted, never run."""
        with self.transaction():
            self.execute(
                "UPDATE journal SET status = 'interrupted', finished_at = ?, "
                "message = ? WHERE id = ?",
                (now(), f"not started: {why}", entry_id),
            )

    def journal_entries(self, revision_id: int) -> list[dict[str, Any]]:
        """The actions of one revision, in order."""
        rows = self.query("SELECT * FROM journal WHERE revision_id = ? ORDER BY id", (revision_id,))
        return [{**r, "steps": loads(r["steps"]), "details": loads(r["details"])} for r in rows]

    # -- results ---------------------------------------------------------------------------
    def record_result(
        self,
        entry_id: int,
        status: str,
        attempts: int,
        message: str,
        details: dict[str, Any],
        resource: ResourceRecord | None,
        history: list[dict[str, Any]],
        address: str = "",
    ) -> None:
        """Finish a journal entry and store its effect on the resource, atomically.

        `history` entries belong to `resource` (or, without one, to `address`). Text from
        outside (hook output, git's messages) is stored without terminal control characters.
        """
        with self.transaction():
            self.execute(
                "UPDATE journal SET status = ?, attempts = ?, finished_at = ?, message = ?, "
                "details = ? WHERE id = ?",
                (
                    status,
                    attempts,
                    now(),
                    printable(message),
                    dumps(printable_data(details)),
                    entry_id,
                ),
            )
            if resource is not None:
                self._put_resource(resource)
            for entry in history:
                self._add_history(resource.address if resource else address, entry)
            self.bump_serial()

    def put_resource(self, record: ResourceRecord) -> None:
        """Store a resource record on its own (a change of state)."""
        with self.transaction():
            self._put_resource(record)
            self.bump_serial()

    def _put_resource(self, record: ResourceRecord) -> None:
        self.execute(
            "INSERT OR REPLACE INTO resources(address, kind, name, spec, spec_digest, state, "
            "revision_id, last_applied_at, outcome, message, pinned) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.address,
                record.kind,
                record.name,
                dumps(record.spec),
                record.spec_digest,
                dumps(printable_data(record.state)),
                record.revision_id,
                record.last_applied_at,
                record.outcome,
                printable_data(record.message),
                record.pinned,
            ),
        )

    def _add_history(self, address: str, entry: dict[str, Any]) -> None:
        self.execute(
            "INSERT INTO history(address, revision_id, at, entry) VALUES (?, ?, ?, ?)",
            (address, entry.get("revision"), now(), dumps(printable_data(entry))),
        )

    def forget(self, address: str, revision_id: int) -> None:
        """Drop a resource that left the specs (its history stays)."""
        with self.transaction():
            self.execute("DELETE FROM resources WHERE address = ?", (address,))
            self.execute("DELETE FROM observations WHERE address = ?", (address,))
            self._add_history(address, {"revision": revision_id, "event": "forgotten"})
            self.bump_serial()

    def resource(self, address: str) -> ResourceRecord | None:
        """The stored record of one resource."""
        rows = self.query("SELECT * FROM resources WHERE address = ?", (address,))
        return _resource(rows[0]) if rows else None

    def resources(self) -> list[ResourceRecord]:
        """Every stored resource, by address."""
        return [_resource(r) for r in self.query("SELECT * FROM resources ORDER BY address")]

    def history(self, address: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """History entries, newest first, of one resource or all."""
        where, params = ("WHERE address = ?", (address,)) if address else ("", ())
        rows = self.query(
            f"SELECT * FROM history {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [{**loads(r["entry"]), "address": r["address"], "at": r["at"]} for r in rows]

    # -- versions ---------------------------------------------------------------------------
    def add_version(self, address: str, content: Any, meta: dict[str, Any]) -> int:
        """Keep applied content as the resource's next version (numbered from 1); return it.

        Content identical to the latest version is not stored twice: its number is returned.
        """
        digest = canonical_digest(content)
        with self.transaction():
            rows = self.query(
                "SELECT version, digest FROM versions WHERE address = ? "
                "ORDER BY version DESC LIMIT 1",
                (address,),
            )
            if rows and rows[0]["digest"] == digest:
                return int(rows[0]["version"])
            number = int(rows[0]["version"]) + 1 if rows else 1
            self.execute(
                "INSERT INTO versions(address, version, created_at, digest, content, meta) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (address, number, now(), digest, dumps(content), dumps(meta)),
            )
            self.bump_serial()
            return number

    def version(self, address: str, number: int) -> dict[str, Any] | None:
        """One version with its content, or None."""
        rows = self.query(
            "SELECT * FROM versions WHERE address = ? AND version = ?", (address, number)
        )
        if not rows:
            return None
        return {**rows[0], "content": loads(rows[0]["content"]), "meta": loads(rows[0]["meta"])}

    def versions(self, address: str) -> list[dict[str, Any]]:
        """Every version of a resource, newest first, without content."""
        rows = self.query(
            "SELECT address, version, created_at, digest, meta FROM versions "
            "WHERE address = ? ORDER BY version DESC",
            (address,),
        )
        return [{**r, "meta": loads(r["meta"])} for r in rows]

    def set_pin(self, address: str, pin: str | None) -> None:
        """Pin a resource (a rollback holds it) or release the pin."""
        with self.transaction():
            self.execute("UPDATE resources SET pinned = ? WHERE address = ?", (pin, address))
            self.bump_serial()

    # -- observations and events -----------------------------------------------------------
    def save_observation(self, observation: Observation) -> None:
        """Cache an observation (no serial bump: observing changes nothing); a store opened
        read-only keeps no cache."""
        if self.read_only:
            return
        with self.transaction():
            self.execute(
                "INSERT OR REPLACE INTO observations(address, observed_at, fingerprint, sync, "
                "health, message, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    observation.address,
                    observation.observed_at,
                    observation.fingerprint,
                    observation.sync,
                    observation.health,
                    printable(observation.message),
                    dumps(printable_data(observation.data)),
                ),
            )

    def observation(self, address: str) -> Observation | None:
        """The cached observation of a resource."""
        rows = self.query("SELECT * FROM observations WHERE address = ?", (address,))
        if not rows:
            return None
        return Observation(**{**rows[0], "data": loads(rows[0]["data"])})

    def add_event(self, level: str, message: str, address: str | None = None) -> None:
        """Append an event (lock reclaimed, interrupted apply, ...)."""
        with self.transaction():
            self.execute(
                "INSERT INTO events(at, level, address, message) VALUES (?, ?, ?, ?)",
                (now(), level, address, printable(message)),
            )

    def events(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest events first."""
        return self.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", (limit,))

    def last_event(self, prefix: str) -> dict[str, Any] | None:
        """The newest event whose message starts with `prefix`."""
        query = "SELECT * FROM events WHERE substr(message, 1, ?) = ? ORDER BY id DESC LIMIT 1"
        rows = self.query(query, (len(prefix), prefix))
        return rows[0] if rows else None


def _resource(row: dict[str, Any]) -> ResourceRecord:
    return ResourceRecord(**{**row, "spec": loads(row["spec"]), "state": loads(row["state"])})
