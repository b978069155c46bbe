"""The envelope every spec document shares, and the validated Resource it becomes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from reconciler.specs.modelfields import fields_holding
from reconciler.specs.types import Address, ResourceName

API_VERSION = "reconciler/v1"


class Metadata(BaseModel):
    """`metadata:` of a spec document."""

    model_config = ConfigDict(extra="forbid")

    name: ResourceName
    labels: dict[str, str] = Field(default_factory=dict)
    dependsOn: list[Address] = Field(
        default_factory=list, description="Addresses (Kind/name) applied before this one."
    )
    driftPolicy: Literal["correct", "warn", "ignore"] = Field(
        default="correct",
        description="In `watch`, drift found when the specs did not change: corrected, "
        "only reported, or left alone.",
    )


class Envelope(BaseModel):
    """A document before its `spec` is validated by its kind's model."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["reconciler/v1"]
    kind: str
    metadata: Metadata
    spec: dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One validated desired-state resource and where it was written."""

    kind: str
    name: str
    spec: BaseModel
    file: str
    line: int
    base_dir: Path
    labels: dict[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    drift_policy: str = "correct"
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # The values `env:` mappings read from variables: credentials, though not SecretStr.
    env_secrets: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def address(self) -> str:
        """`Kind/name`, unique across the specs."""
        return f"{self.kind}/{self.name}"

    @property
    def location(self) -> str:
        """`file:line` of the document, for messages."""
        return f"{self.file}:{self.line}"

    def public_dict(self) -> dict[str, Any]:
        """The resource as JSON data with every secret masked (safe to store and print)."""
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "labels": dict(self.labels),
                "dependsOn": list(self.depends_on),
                # only when set, so that the digests of existing resources stay as they were
                **({"driftPolicy": self.drift_policy} if self.drift_policy != "correct" else {}),
            },
            "spec": self.spec.model_dump(mode="json", exclude_none=True),
        }

    @property
    def digest(self) -> str:
        """Content digest of the public form: changes when the desired state changes."""
        return canonical_digest(self.public_dict())

    def secrets(self) -> list[str]:
        """Every SecretStr value in the spec and every value its `env:` mappings read from
        a variable, to be masked wherever text is shown and kept from child processes."""
        return [*_secret_values(self.spec), *self.env_secrets]


@dataclass(frozen=True)
class SpecSet:
    """All resources of one specs source, with the digest a saved plan is checked against."""

    source: str
    commit: str | None
    resources: tuple[Resource, ...]

    @property
    def digest(self) -> str:
        """Digest of every resource's public form, in address order."""
        return canonical_digest([r.public_dict() for r in sorted(self.resources, key=_address)])

    def by_address(self) -> dict[str, Resource]:
        """Resources keyed by `Kind/name`."""
        return {r.address: r for r in self.resources}


def _address(resource: Resource) -> str:
    return resource.address


def canonical_digest(data: Any) -> str:
    """`sha256:` of the canonical JSON of `data` (sorted keys, no spaces)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _secret_values(value: Any) -> list[str]:
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, BaseModel):
        return [
            s
            for name in fields_holding(type(value), "secret")
            for s in _secret_values(getattr(value, name))
        ]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _secret_values(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _secret_values(item)]
    return []
