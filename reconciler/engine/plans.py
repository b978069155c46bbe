"""A plan: every resource's change, its JSON form (DESIGN.md 3.), and how it is saved."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.kinds.base import Action, ChangeAction, KindHealth
from reconciler.kinds.base import Step as Step  # re-exported: the cli renders steps

FORMAT_VERSION = 1
ACTIONS: tuple[ChangeAction, ...] = ("create", "update", "delete", "noop", "blocked")


@dataclass(frozen=True)
class Change:
    """What the plan does to one resource, and why."""

    address: str
    kind: str
    name: str
    action: ChangeAction
    reason: str
    actions: tuple[Action, ...] = ()
    notes: tuple[Step, ...] = ()
    fingerprint: str | None = None  # digest of the observed facts the plan was made from
    health: KindHealth | None = None  # the kind's word on what runs now (ResourcePlan.health)
    known: dict[str, Any] = field(default_factory=dict)  # ResourcePlan.known, not saved

    @property
    def blocked(self) -> bool:
        """True when something of the resource is left blocked, even if other steps apply."""
        return self.action == "blocked" or any(n["op"] == "blocked" for n in self.notes)

    @property
    def steps(self) -> list[Step]:
        """Applicable steps first, then the notes (blocked, skipped)."""
        return [s for a in self.actions for s in a.steps] + list(self.notes)

    def to_json(self) -> dict[str, Any]:
        """The change as DESIGN.md 3. shows it."""
        return {
            "address": self.address,
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "reason": self.reason,
            "steps": self.steps,
        }


@dataclass(frozen=True)
class Plan:
    """All changes computed from one specs digest and one state serial."""

    source: str
    commit: str | None
    digest: str
    state_serial: int
    changes: tuple[Change, ...]
    targets: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, int]:
        """How many resources get each action; `blocked` counts every resource with a blocked
        step, also one whose other steps apply (counted under its action too): apply
        reports the same resources blocked and exits 1."""
        counts = Counter(c.action for c in self.changes)
        summary: dict[str, int] = {action: counts.get(action, 0) for action in ACTIONS}
        summary["blocked"] = sum(c.blocked for c in self.changes)
        return summary

    @property
    def pending(self) -> bool:
        """True when the world differs from the specs (applicable or blocked changes)."""
        return any(c.action != "noop" for c in self.changes)

    def to_json(self) -> dict[str, Any]:
        """`plan --json`: exactly the object of DESIGN.md 3."""
        return {
            "format_version": FORMAT_VERSION,
            "specs": {"source": self.source, "commit": self.commit, "digest": self.digest},
            "state_serial": self.state_serial,
            "changes": [c.to_json() for c in self.changes],
            "summary": self.summary(),
        }

    def save(self, path: Path) -> None:
        """Write the plan with what `apply FILE` needs to check it is still current."""
        data = self.to_json()
        data["observed"] = {c.address: c.fingerprint for c in self.changes}
        data["targets"] = list(self.targets)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
