"""What observing a Taxonomy finds: per target, the branch tip, the file, and the base.

The file's text and the base version's content can be large: they travel with the
observation for the pure planner but stay out of its fingerprint, which holds their
digests instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TargetObserved(BaseModel):
    """One target file as found at its branch tip, and the version last applied to it."""

    unit: str
    tip: str | None = None  # the branch's commit; None: the branch does not exist
    file_sha256: str | None = None  # digest of the file's bytes; None: no file there
    text: str | None = Field(default=None, exclude=True)
    base_version: int | None = None  # the version last applied to this target
    base_digest: str | None = None
    base: dict[str, Any] | None = Field(default=None, exclude=True)
    # The base's terms when observing read them already (the spec's own terms when the base
    # is the spec's content): the planner then does not read `base` again.
    base_terms: Any = Field(default=None, exclude=True)
    error: str | None = None  # the target could not be read (unreachable, not UTF-8 ...)


class TaxonomyObserved(BaseModel):
    """Every target of one Taxonomy."""

    targets: list[TargetObserved] = Field(default_factory=list)
