"""Health results, incidents and remediation attempts (schema v3), and the reads metrics need.

None of this bumps the serial: checking and alerting change no desired or applied state
(a remediation's re-apply or rollback records itself like any other apply).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.store.clock import now
from reconciler.store.database import StoreDatabase, dumps
from reconciler.store.schema import JOURNAL_MILLISECONDS


@dataclass(frozen=True)
class Incident:
    """An unhealthy spell of one resource under one policy, from first failure to recovery."""

    id: int
    policy: str
    address: str
    opened_at: str
    closed_at: str | None
    status: str  # open | resolved
    message: str
    step: int  # index of the remediation step being worked on
    attempts: int  # attempts of that step so far
    next_at: str | None  # not before this time (backoff)
    alerted_at: str | None


class HealthRecords:
    """Reads and writes the health tables of a store."""

    def __init__(self, db: StoreDatabase) -> None:
        self.db = db

    # -- results ----------------------------------------------------------------------------
    def add_result(
        self, policy: str, address: str, status: str, message: str, report: dict[str, Any]
    ) -> None:
        """Record one resource's checks under one policy."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO health_results(at, policy, address, status, message, report) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now(), policy, address, status, message, dumps(report)),
            )

    def latest_results(self) -> list[dict[str, Any]]:
        """The newest status of every (policy, address), without the reports."""
        return self.db.query(
            "SELECT address, policy, status FROM health_results WHERE id IN "
            "(SELECT MAX(id) FROM health_results GROUP BY policy, address) ORDER BY address, policy"
        )

    def last_checked(self, policy: str) -> str | None:
        """When the policy's checks last ran (any resource), or None."""
        rows = self.db.query("SELECT MAX(at) AS at FROM health_results WHERE policy = ?", (policy,))
        return rows[0]["at"] if rows else None

    # -- incidents ---------------------------------------------------------------------------
    def open_incident(self, policy: str, address: str) -> Incident | None:
        """The open incident of a resource under a policy, if any."""
        rows = self.db.query(
            "SELECT * FROM incidents WHERE policy = ? AND address = ? AND closed_at IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (policy, address),
        )
        return Incident(**rows[0]) if rows else None

    def open_incidents(self) -> list[Incident]:
        """Every open incident."""
        rows = self.db.query("SELECT * FROM incidents WHERE closed_at IS NULL ORDER BY id")
        return [Incident(**r) for r in rows]

    def create_incident(self, policy: str, address: str, message: str) -> Incident:
        """Open an incident at its first remediation step."""
        with self.db.transaction():
            cursor = self.db.execute(
                "INSERT INTO incidents(policy, address, opened_at, status, message, step, "
                "attempts) VALUES (?, ?, ?, 'open', ?, 0, 0)",
                (policy, address, now(), message),
            )
        incident = self.incident(int(cursor.lastrowid or 0))
        assert incident is not None
        return incident

    def incident(self, incident_id: int) -> Incident | None:
        """One incident by id."""
        rows = self.db.query("SELECT * FROM incidents WHERE id = ?", (incident_id,))
        return Incident(**rows[0]) if rows else None

    def incidents(self, limit: int = 100) -> list[Incident]:
        """The newest incidents first."""
        rows = self.db.query("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,))
        return [Incident(**r) for r in rows]

    def advance(
        self, incident_id: int, step: int, attempts: int, next_at: str | None, message: str
    ) -> None:
        """Move an incident's remediation cursor (and its backoff deadline)."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE incidents SET step = ?, attempts = ?, next_at = ?, message = ? "
                "WHERE id = ?",
                (step, attempts, next_at, message, incident_id),
            )

    def mark_alerted(self, incident_id: int) -> None:
        """The incident's one alert went out."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE incidents SET alerted_at = ? WHERE id = ?", (now(), incident_id)
            )

    def close_incident(self, incident_id: int, message: str) -> None:
        """The resource is healthy again."""
        with self.db.transaction():
            self.db.execute(
                "UPDATE incidents SET closed_at = ?, status = 'resolved', message = ? WHERE id = ?",
                (now(), message, incident_id),
            )

    # -- remediation attempts -----------------------------------------------------------------
    def add_attempt(
        self,
        incident: Incident,
        step: str,
        attempt: int,
        outcome: str,
        message: str,
        subject: str | None = None,
    ) -> None:
        """Record one remediation attempt and its outcome (`subject`: e.g. a failed commit)."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO remediations(incident_id, at, address, step, attempt, outcome, "
                "message, subject) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (incident.id, now(), incident.address, step, attempt, outcome, message, subject),
            )

    def attempts(self, address: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Remediation attempts, newest first."""
        where, params = ("WHERE address = ?", (address,)) if address else ("", ())
        return self.db.query(
            f"SELECT * FROM remediations {where} ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    def done_before(self, address: str, step: str, subject: str) -> bool:
        """Whether `step` already ran for this resource and subject (no rollback loops)."""
        rows = self.db.query(
            "SELECT 1 FROM remediations WHERE address = ? AND step = ? AND subject = ? LIMIT 1",
            (address, step, subject),
        )
        return bool(rows)

    # -- reads for metrics ---------------------------------------------------------------------
    def journal_durations(self) -> list[dict[str, Any]]:
        """Finished journal entries counted by address, status and duration in whole
        milliseconds (`ms`, `n`), read from the `journal_durations` index alone."""
        return self.db.query(
            f"SELECT address, status, {JOURNAL_MILLISECONDS} AS ms, COUNT(*) AS n FROM journal "
            "WHERE status IN ('done', 'failed') AND ms IS NOT NULL GROUP BY status, address, ms"
        )

    def observed_health(self) -> list[dict[str, Any]]:
        """Every stored resource's address, kind, whether it has a cached observation and
        the health that observation gave."""
        return self.db.query(
            "SELECT r.address, r.kind, o.address IS NOT NULL AS observed, o.health "
            "FROM resources r LEFT JOIN observations o ON o.address = r.address "
            "ORDER BY r.address"
        )

    def remediation_outcomes(self) -> dict[str, int]:
        """Remediation attempts counted by outcome."""
        rows = self.db.query("SELECT outcome, COUNT(*) AS n FROM remediations GROUP BY outcome")
        return {r["outcome"]: int(r["n"]) for r in rows}
