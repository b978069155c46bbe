"""The protocol every kind's controller implements, and the data it trades with the engine.

observe() only reads the world; plan() is a pure function of desired, observed and last
applied; apply() changes one unit (an Action) and reports, never raising into the engine
except with TemporaryError (worth a retry) or another ReconcilerError (final).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from reconciler.errors import ReconcilerError
from reconciler.git import GitRunner, Remote
from reconciler.redaction import Redactor
from reconciler.specs import Resource
from reconciler.specs.envelope import canonical_digest
from reconciler.store import ResourceRecord, Store

Step = dict[str, Any]
ChangeAction = Literal["create", "update", "delete", "noop", "blocked"]
# What a kind knows of the health of what runs now, when the action alone does not say it.
KindHealth = Literal["Progressing", "Degraded"]
Outcome = Literal["done", "partial", "failed"]
# Steps that explain the plan without doing anything.
INFORMATIVE_OPS = frozenset({"blocked", "skip", "noop"})


def _no_repository(address: str, _name: str) -> Remote:
    raise ReconcilerError(f"no {address} in the specs")


@dataclass(frozen=True)
class Context:
    """What controllers may use: directories, git, the redactor, limits, the specs of this
    run. No globals; built whole by the engine for one run, never changed after."""

    state_dir: Path
    git: GitRunner
    redact: Redactor
    store: Store  # read it freely; write only versions (the engine records everything else)
    resources: Mapping[str, Resource] = field(default_factory=dict)  # every loaded spec
    spec_commit: str | None = None  # the commit the specs were read from (None: a directory)
    parallelism: int = 4
    # (address, name) -> that resource's repository, asked of its kind (RepositoryProvider).
    repositories: Callable[[str, str], Remote] = field(default=_no_repository)

    @property
    def cache_dir(self) -> Path:
        """Where kinds keep caches (git objects, exports) between runs."""
        return self.state_dir / "cache"

    def repository(self, address: str, name: str) -> Remote:
        """The repository `name` the resource at `address` serves (a Mirror's destination),
        so a kind can use another kind's repository without knowing that kind."""
        return self.repositories(address, name)


@dataclass(frozen=True)
class Action:
    """One unit of work of a resource (e.g. one mirror destination), applied as a whole."""

    unit: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ResourcePlan:
    """A controller's verdict on one resource."""

    action: ChangeAction
    reason: str
    actions: tuple[Action, ...] = ()
    notes: tuple[Step, ...] = ()  # blocked / skipped steps: shown, never applied
    # Progressing: blocked only until another resource is ready, what runs being healthy
    # (an Environment waiting on `requires`); Degraded: what runs now is broken, though the
    # plan may repair it (`current` pointing to a release that is gone). None: as the
    # action says (blocked is Degraded).
    health: KindHealth | None = None
    # Units found as the spec wants (no action): recorded with the resource like the state an
    # action leaves, so the kind knows them later (a mirrored repository that vanishes).
    known: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> list[Step]:
        """Every step, applicable ones first."""
        return [s for a in self.actions for s in a.steps] + list(self.notes)


@dataclass(frozen=True)
class ActionResult:
    """What apply() did to one unit."""

    outcome: Outcome
    message: str
    state: Any = None  # the unit's state after the action, stored as state[unit]
    history: dict[str, Any] = field(default_factory=dict)  # with a one-line "summary"
    pin: str | None = None  # set by a rollback: what the resource is held at

    def redacted(self, redact: Redactor) -> ActionResult:
        """The result with every credential scrubbed from its message, state and history
        (hook output and git's words end up in all three)."""
        return replace(
            self,
            message=redact(self.message),
            state=redact.data(self.state),
            history=redact.data(self.history),
        )


def fingerprint(observed: BaseModel) -> str:
    """A digest of observed facts, so a saved plan can tell that the world moved."""
    return canonical_digest(observed.model_dump(mode="json"))


class Controller(Protocol):
    """A kind: spec model, observe, pure plan, apply."""

    kind: ClassVar[str]
    spec_model: ClassVar[type[BaseModel]]
    # op -> the model of that step (kinds/base/steps.py): a saved plan read back from a file is
    # checked against it before it is compared with a plan made now.
    step_models: ClassVar[Mapping[str, type[BaseModel]]]

    def observe(self, resource: Resource, context: Context) -> BaseModel:
        """Read the real world for this resource; never change it."""
        ...

    def plan(
        self, resource: Resource, observed: BaseModel, last_applied: ResourceRecord | None
    ) -> ResourcePlan:
        """Pure: the actions that make the world match the resource."""
        ...

    def apply(self, resource: Resource, action: Action, context: Context) -> ActionResult:
        """Carry out one action; idempotent, as atomic as the target allows."""
        ...


@runtime_checkable
class Rollbacker(Protocol):
    """Optional capability: return a resource to an earlier recorded revision and pin it."""

    def rollback(
        self, resource: Resource, record: ResourceRecord, to: str | None, context: Context
    ) -> ActionResult:
        """Go back to `to` (kind-specific: a release or version number; None: the previous
        good one); the result's `pin` says what the resource is held at."""
        ...


@runtime_checkable
class Claimer(Protocol):
    """Optional capability: what a resource writes that no other resource may write too
    (two taxonomies in one file, two environments in one directory would undo each other
    on every apply)."""

    def claims(self, resource: Resource) -> dict[str, str]:
        """Each thing written, as a phrase (`the file REPO@BRANCH:PATH`) -> the field that
        names it (for error messages)."""
        ...


@runtime_checkable
class RepositoryProvider(Protocol):
    """Optional capability: repositories a resource serves under a name, for other kinds
    (an Environment deploys from a Mirror's destination)."""

    def repository(self, resource: Resource, name: str) -> Remote:
        """The repository `name` as served by `resource` (URL or path, with its credentials)."""
        ...


class PullReport(Protocol):
    """What a pull took back into the spec file, what it left, and what it could not read."""

    @property
    def file(self) -> Path:
        """The spec file written (or that a dry run would write)."""
        ...

    @property
    def taken(self) -> Sequence[str]:
        """The edits taken into the spec, one line each."""
        ...

    @property
    def kept(self) -> Sequence[str]:
        """The edits left alone because the spec changed the same thing."""
        ...

    @property
    def skipped(self) -> Sequence[str]:
        """The targets that could not be read, each with why."""
        ...


class UnknownTarget(ReconcilerError):
    """A pull's `--target` names none of the resource's targets."""


@runtime_checkable
class Puller(Protocol):
    """Optional capability: bring the edits made downstream back into the spec file."""

    def pull(
        self, resource: Resource, target: str | None, context: Context, write: bool
    ) -> PullReport:
        """Take the edits of the targets (all, or the one `target` names: UnknownTarget if
        none) into the resource's spec file; with `write` False only report them."""
        ...


@runtime_checkable
class Referrer(Protocol):
    """Optional capability: a resource depends on others its spec names (an Environment on
    those it `requires`), beyond `metadata.dependsOn`."""

    def references(self, resource: Resource) -> dict[str, str]:
        """Each address depended on -> the field that names it (for error messages)."""
        ...


@dataclass(frozen=True)
class CheckResult:
    """One health check's verdict on one resource."""

    type: str
    status: str  # Healthy | Progressing | Degraded | Missing | Unknown
    message: str


@dataclass(frozen=True)
class Planned:
    """What a plan made now says of a resource, for a check that compares it with its spec."""

    action: ChangeAction
    reason: str  # with the reason of what blocks it


@dataclass(frozen=True)
class RecordFacts:
    """What health reports of a resource that only its kind can read from its record."""

    last_deploy: str | None = None  # when the last release was made
    commit: str | None = None  # the commit running now
    failed_commit: str | None = None  # the commit a rollback would move away from


# Answers one check type for one resource, now.
CheckFunction = Callable[[Resource, Planned, Context], CheckResult]
# What applying a resource of the kind is, in `reconciler metrics`.
Activity = Literal["sync", "deploy"]


@runtime_checkable
class Checker(Protocol):
    """Optional capability: the kind answers health's questions about its own resources, so
    health, healing and metrics never test a kind's name."""

    # The policy check types only this kind answers (`deployment`), each with its answer.
    checks: ClassVar[Mapping[str, CheckFunction]]
    activity: ClassVar[Activity]
    heals_by_rollback: ClassVar[bool]  # the `rollback` remediation applies to its resources

    def facts(self, record: ResourceRecord) -> RecordFacts:
        """The facts of the stored record that health reports and healing needs."""
        ...
