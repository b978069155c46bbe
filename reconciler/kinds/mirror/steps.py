"""The shape of every step a Mirror plan holds (planning.py writes them, applying.py reads
them): checked field by field when a saved plan is read back, before it is compared with a
plan made now (which alone is applied)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from reconciler.kinds.base.steps import RefName, Sha, StepModel


class _Step(StepModel):
    """A step of one destination of one repository (unit: the destination's URL)."""

    repo: str
    unit: str


class _RefStep(_Step):
    ref: RefName


class InitStep(_Step):
    """Create the missing destination as a bare repository."""

    op: Literal["init"]
    head: RefName


class CreateStep(_RefStep):
    """Create a ref the destination lacks."""

    op: Literal["create"]
    to: Sha


class MoveStep(_RefStep):
    """Move a ref from the tip seen to the source's (compare-and-swap)."""

    op: Literal["fast-forward", "force-update", "skip"]
    from_: Sha = Field(alias="from")
    to: Sha


class DeleteStep(_RefStep):
    """Delete a ref the source dropped (prune)."""

    op: Literal["delete"]
    from_: Sha = Field(alias="from")


class BlockedStep(StepModel):
    """Why a source, a destination or a ref is left alone (never applied)."""

    op: Literal["blocked"]
    repo: str | None = None
    unit: str
    ref: RefName | None = None
    from_: Sha | None = Field(default=None, alias="from")
    to: Sha | None = None


STEP_MODELS: dict[str, type[BaseModel]] = {
    "init": InitStep,
    "create": CreateStep,
    "fast-forward": MoveStep,
    "force-update": MoveStep,
    "skip": MoveStep,
    "delete": DeleteStep,
    "blocked": BlockedStep,
}
