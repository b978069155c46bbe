"""The shape of every step a Mirror plan holds (planning.py writes them, applying.py reads
them): checked field by field when a saved plan is read back, before anything runs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from reconciler.kinds.mirror.model import MirrorSpec, repo_name_problem
from reconciler.kinds.mirror.observed import selected
from reconciler.kinds.mirror.observing import repository_names
from reconciler.kinds.steps import RefName, Sha, StepModel, one_of, shown, spec_in


class _Step(StepModel):
    """A step of one destination of one repository (unit: the destination's URL)."""

    repo: str
    unit: str

    @field_validator("repo")
    @classmethod
    def _repo(cls, repo: str, info: ValidationInfo) -> str:
        return known_repo(spec_in(info), repo)

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str, info: ValidationInfo) -> str:
        spec: MirrorSpec = spec_in(info)
        repo = info.data.get("repo")
        if repo is None:  # its own error is reported
            return unit
        return one_of(unit, [d.remote(repo).url for d in spec.destinations], "a destination")


class _RefStep(_Step):
    ref: RefName

    @field_validator("ref")
    @classmethod
    def _filtered(cls, ref: str, info: ValidationInfo) -> str:
        if not selected(ref, spec_in(info)):
            raise ValueError(f"{shown(ref)} is not a branch or tag inside the spec's filters")
        return ref


class InitStep(_Step):
    """Create the missing destination as a bare repository."""

    op: Literal["init"]
    head: RefName

    @field_validator("head")
    @classmethod
    def _branch(cls, head: str) -> str:
        if not head.startswith("refs/heads/"):
            raise ValueError(f"{shown(head)} is not a branch (refs/heads/...)")
        return head


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
    repo: str | None = None  # before unit: the unit is checked against it
    unit: str
    ref: RefName | None = None
    from_: Sha | None = Field(default=None, alias="from")
    to: Sha | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, repo: str | None, info: ValidationInfo) -> str | None:
        return None if repo is None else known_repo(spec_in(info), repo)

    @field_validator("unit")
    @classmethod
    def _unit(cls, unit: str, info: ValidationInfo) -> str:
        spec: MirrorSpec = spec_in(info)
        repo = info.data.get("repo")
        remotes = [spec.source, *spec.destinations]
        urls = [r.url for r in remotes] if repo is None else [r.remote(repo).url for r in remotes]
        return one_of(unit, urls, "the source or a destination")


STEP_MODELS: dict[str, type[BaseModel]] = {
    "init": InitStep,
    "create": CreateStep,
    "fast-forward": MoveStep,
    "force-update": MoveStep,
    "skip": MoveStep,
    "delete": DeleteStep,
    "blocked": BlockedStep,
}


def known_repo(spec: MirrorSpec, repo: str) -> str:
    """`repo` if the spec covers it: a listed name, the one repository, or (discovery) a
    name discovery would mirror (model.repo_name_problem)."""
    if spec.repos == ["*"]:
        problem = repo_name_problem(repo)
        if problem:
            raise ValueError(f"{shown(repo)}: {problem}")
        return repo
    return one_of(repo, repository_names(spec).names, "a repository")
