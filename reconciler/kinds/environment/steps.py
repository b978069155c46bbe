"""The shape of every step an Environment plan holds (planning.py writes them, the deploy
reads the release and sha of the first): checked field by field when a saved plan is read
back, before it is compared with a plan made now (which alone is applied)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from reconciler.kinds.base.steps import Sha, StepModel
from reconciler.kinds.environment.releases import check_release_name

Slot = Literal["blue", "green"]  # releases.SLOTS


class _Unit(StepModel):
    unit: str  # the target directory


class _Step(_Unit):
    """A step of a deploy of `sha` (what `ref` names) as the release `release`."""

    ref: str
    sha: Sha
    release: str  # after sha: the name must carry its short sha

    @field_validator("release")
    @classmethod
    def _release(cls, release: str, info: ValidationInfo) -> str:
        sha = info.data.get("sha")
        return release if sha is None else check_release_name(release, sha)


class DeployStep(_Step):
    """fetch, export, verify, prune, and confirm (an interrupted deploy's release)."""

    op: Literal["fetch", "export", "verify", "prune", "confirm"]


class HookStep(_Step):
    """A build or activate hook (shown; the deploy runs the spec's hooks, never these)."""

    op: Literal["build", "activate"]
    run: Annotated[list[str], Field(min_length=1)]


class PreviewStep(_Step):
    """The checks of the idle slot of a blue-green deploy."""

    op: Literal["preview"]
    slot: Slot


class SwitchStep(_Step):
    """`current` (or, blue-green, the idle slot) to the new release."""

    op: Literal["switch"]
    slot: Slot | None = None


class BlockedStep(_Unit):
    """Why nothing is deployed (never applied)."""

    op: Literal["blocked"]


STEP_MODELS: dict[str, type[BaseModel]] = {
    **dict.fromkeys(("fetch", "export", "verify", "prune", "confirm"), DeployStep),
    "build": HookStep,
    "activate": HookStep,
    "preview": PreviewStep,
    "switch": SwitchStep,
    "blocked": BlockedStep,
}
