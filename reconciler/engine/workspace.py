"""Where a run takes its inputs from: specs source, state file, limits; builds the context."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.git import GitRunner, Remote
from reconciler.kinds.base import Context, RepositoryProvider
from reconciler.kinds.registry import Registry, default_registry
from reconciler.redaction import Redactor
from reconciler.specs import Resource, SpecSet
from reconciler.store import Store


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of an action that failed with a TemporaryError: exponential backoff with jitter."""

    attempts: int = 3
    base: float = 0.5
    factor: float = 2.0
    max_delay: float = 10.0

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based); jitter in [0, 1)."""
        raw = min(self.max_delay, self.base * self.factor ** (attempt - 1))
        return raw * (0.8 + 0.4 * jitter)


@dataclass(frozen=True)
class Workspace:
    """One invocation's settings, given whole at construction, and the objects built from
    them (opened on first use)."""

    specs: str = "specs"
    state: Path = Path("state/reconciler.db")
    parallelism: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    read_only: bool = False  # the store is opened read-only (commands that only read)

    @cached_property
    def redact(self) -> Redactor:
        """Masks every secret the specs carry."""
        return Redactor()

    @cached_property
    def registry(self) -> Registry:
        """The kinds this reconciler knows."""
        return default_registry()

    def __post_init__(self) -> None:
        # Absolute: caches recorded in the store stay findable.
        object.__setattr__(self, "state", self.state.absolute())

    @property
    def state_dir(self) -> Path:
        """The directory of the store file: caches live beside it."""
        return self.state.parent

    @cached_property
    def store(self) -> Store:
        """The state store, opened (and migrated, unless read-only) on first use."""
        return Store(self.state, read_only=self.read_only)

    @cached_property
    def git(self) -> GitRunner:
        """The git runner, with its askpass helper under the cache directory."""
        return GitRunner(self.state_dir / "cache", self.redact)

    def context(self, specs: SpecSet) -> Context:
        """The context handed to controllers working on `specs`."""
        resources = specs.by_address()
        return Context(
            state_dir=self.state_dir,
            git=self.git,
            redact=self.redact,
            store=self.store,
            resources=resources,
            spec_commit=specs.commit,
            parallelism=self.parallelism,
            repositories=partial(served_repository, self.registry, resources),
        )


def served_repository(
    registry: Registry, resources: Mapping[str, Resource], address: str, name: str
) -> Remote:
    """The repository `name` that the resource at `address` serves, asked of its kind."""
    resource = resources.get(address)
    controller = registry[resource.kind] if resource is not None else None
    if resource is None or not isinstance(controller, RepositoryProvider):
        raise ReconcilerError(f"no {address} in the specs")
    return controller.repository(resource, name)
