"""Where a run takes its inputs from: specs source, state file, limits; builds the context."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from reconciler.git import GitRunner
from reconciler.kinds.base import Context
from reconciler.kinds.registry import Registry, default_registry
from reconciler.redaction import Redactor
from reconciler.specs import SpecSet
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


@dataclass
class Workspace:
    """One invocation's settings, and the objects built from them."""

    specs: str = "specs"
    state: Path = Path("state/reconciler.db")
    parallelism: int = 4
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    progress: Callable[[str], None] = field(default=lambda _message: None)
    specs_loaded: SpecSet | None = None

    @cached_property
    def redact(self) -> Redactor:
        """Masks every secret the specs carry."""
        return Redactor()

    @cached_property
    def registry(self) -> Registry:
        """The kinds this reconciler knows."""
        return default_registry()

    def __post_init__(self) -> None:
        self.state = self.state.absolute()  # caches recorded in the store stay findable

    @property
    def state_dir(self) -> Path:
        """The directory of the store file: caches live beside it."""
        return self.state.parent

    @cached_property
    def store(self) -> Store:
        """The state store, opened (and migrated) on first use."""
        return Store(self.state)

    @cached_property
    def git(self) -> GitRunner:
        """The git runner, with its askpass helper under the cache directory."""
        return GitRunner(self.state_dir / "cache", self.redact)

    def context(self) -> Context:
        """The context handed to controllers."""
        return Context(
            state_dir=self.state_dir,
            git=self.git,
            redact=self.redact,
            store=self.store,
            resources=self.specs_loaded.by_address() if self.specs_loaded else {},
            parallelism=self.parallelism,
            progress=self.progress,
        )
