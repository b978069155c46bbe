"""The shape of every step a Taxonomy plan holds (planning.py writes them; apply reads the
first step of a target: the tip and base to merge from, the digest the file must have):
checked field by field when a saved plan is read back, before it is compared with a plan
made now (which alone is applied)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reconciler.kinds.base.steps import Digest, Sha, StepModel, Text


class _Step(StepModel):
    unit: str  # REPO@BRANCH:PATH of a target


class AdoptStep(_Step):
    """Record the spec's version as the base of a file that already matches."""

    op: Literal["adopt"]
    from_: Sha | None = Field(alias="from")  # the branch tip merged from (None: no branch)
    base: int | None = Field(ge=1)  # the version last applied to the target


class WriteStep(AdoptStep):
    """Commit the merged file (it must hash to `digest`)."""

    op: Literal["write"]  # type: ignore[assignment]
    digest: Digest
    terms: int = Field(ge=0)


class ConflictStep(_Step):
    """A conflict the strategy resolved (shown)."""

    op: Literal["conflict"]
    term: str
    field: str | None
    kind: str
    spec: Any = None
    target: Any = None
    resolution: Literal["spec", "target"] | None
    detail: Text


class TermStep(_Step):
    """One term's change (shown)."""

    op: Literal["add", "remove", "update", "merge"]
    term: str
    fields: dict[str, list[Any]] | None = None  # key -> [before, after]
    into: str | None = None


class BlockedStep(_Step):
    """Why a target is left alone (never applied)."""

    op: Literal["blocked"]


STEP_MODELS: dict[str, type[BaseModel]] = {
    "adopt": AdoptStep,
    "write": WriteStep,
    "conflict": ConflictStep,
    **dict.fromkeys(("add", "remove", "update", "merge"), TermStep),
    "blocked": BlockedStep,
}
