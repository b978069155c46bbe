"""The one exception tree of reconciler.

    ReconcilerError                 expected; shown to the user as one line per problem
     ├── SpecError                  bad specs: a list of SpecProblem (file, line, field)
     ├── StoreError                 the state store cannot do what was asked
     │    ├── LockHeld              another apply holds the lock
     │    └── StalePlan             a saved plan no longer matches its inputs
     ├── GitError                   a git operation failed (message already scrubbed)
     └── ActionError                a controller could not apply an action
          ├── TemporaryError        worth retrying (network, lock contention)
          └── PermanentError        retrying cannot help (rejected, diverged)

Anything else reaching the CLI is a bug: it prints one line and, with -v, the traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    return repr(match.group(0))[1:-1]


@dataclass(frozen=True)
class SpecProblem:
    """One thing wrong with the specs, located as precisely as the input allows."""

    file: str
    line: int | None
    message: str
    address: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        parts = [where]
        if self.address:
            parts.append(self.address)
        if self.field:
            parts.append(self.field)
        # One problem, one line: a control character from the input never breaks it.
        return _CONTROL.sub(_escape, ": ".join([*parts, self.message]))


class ReconcilerError(Exception):
    """Root of every error reconciler expects and explains."""


class SpecError(ReconcilerError):
    """The specs are invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class StoreError(ReconcilerError):
    """The state store refused or failed an operation."""


class LockHeld(StoreError):
    """Another process holds the apply lock."""


class StalePlan(StoreError):
    """A saved plan's inputs changed since it was made."""


class GitError(ReconcilerError):
    """A git command or protocol exchange failed."""


class ActionError(ReconcilerError):
    """A controller could not apply an action."""


class TemporaryError(ActionError):
    """A failure that may go away on retry (network, contention)."""


class PermanentError(ActionError):
    """A failure that a retry cannot fix."""
