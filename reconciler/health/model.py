"""The HealthPolicy spec: which resources, which checks, which remediations in which order."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.specs.types import Address, Command, Duration, Env, FieldError, Timeout, WebUrl

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+\Z")  # an HTTP token

KINDS = ("Mirror", "Taxonomy", "Environment")


class Selector(BaseModel):
    """Which resources a policy watches: every condition given must hold (an AND)."""

    model_config = ConfigDict(extra="forbid")

    addresses: list[Address] = Field(default_factory=list, description="Exact Kind/name.")
    kinds: list[Literal["Mirror", "Taxonomy", "Environment"]] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict, description="Every label must match.")

    @model_validator(mode="after")
    def _something(self) -> Selector:
        if not (self.addresses or self.kinds or self.labels):
            raise ValueError("a selector needs `addresses`, `kinds` and/or `labels`")
        for index, address in enumerate(self.addresses):
            kind = address.partition("/")[0]
            if kind not in KINDS:
                raise FieldError(
                    f"policies select {', '.join(KINDS)} resources, not {address}",
                    "addresses",
                    index,
                )
            if self.kinds and kind not in self.kinds:
                raise FieldError(
                    f"never selected: {address} is not of the kinds selected "
                    f"({', '.join(self.kinds)}), and every condition must hold",
                    "addresses",
                    index,
                )
        return self


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyncLagCheck(_Check):
    """Degraded when the resource has been out of sync for longer than `maxLag`."""

    type: Literal["syncLag"]
    maxLag: Duration = Field(default=timedelta(hours=1))


class DriftCheck(_Check):
    """Degraded when the observed world differs from the spec (a non-empty plan)."""

    type: Literal["drift"]


class HttpCheck(_Check):
    """GET `url`: the expected status and, optionally, a body substring."""

    type: Literal["http"]
    url: WebUrl
    status: int = Field(default=200, ge=100, le=599)
    contains: str | None = None
    timeout: Timeout = Field(default=timedelta(seconds=5))


class CommandCheck(_Check):
    """Run an argument list (no shell) in the spec file's directory: passes on exit 0."""

    type: Literal["command"]
    run: Command
    timeout: Timeout = Field(default=timedelta(seconds=30))
    env: Env | None = None


class KindCheck(_Check):
    """A check the resource's kind answers (kinds.base.Checker); Healthy with
    `not_applicable` on a resource whose kind does not."""

    type: str
    kind: ClassVar[str]  # the kind that answers it, for the selector's `kinds`
    not_applicable: ClassVar[str]


class DeploymentCheck(KindCheck):
    """Environments: the spec's `verify` checks, run against the current release."""

    type: Literal["deployment"]
    kind: ClassVar[str] = "Environment"
    not_applicable: ClassVar[str] = "not an environment"


class TaxonomyCheck(KindCheck):
    """Taxonomies: every target carries the current version and parses."""

    type: Literal["taxonomy"]
    kind: ClassVar[str] = "Taxonomy"
    not_applicable: ClassVar[str] = "not a taxonomy"


HealthCheck = Annotated[
    SyncLagCheck | DriftCheck | HttpCheck | CommandCheck | DeploymentCheck | TaxonomyCheck,
    Field(discriminator="type"),
]


class Retry(BaseModel):
    """Re-apply the resource, at most `attempts` times, `base * factor**n` apart (capped)."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=3, ge=1, le=100)
    base: Duration = Field(default=timedelta(seconds=30))
    factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max: Duration = Field(default=timedelta(hours=1))

    def delay(self, attempt: int, jitter: float) -> float:
        """Seconds to wait after attempt number `attempt` (1-based); jitter in [0, 1)."""
        raw = min(
            self.max.total_seconds(), self.base.total_seconds() * self.factor ** (attempt - 1)
        )
        return raw * (0.8 + 0.4 * jitter)


class Resync(BaseModel):
    """Re-apply the resource and what it depends on, once per incident."""

    model_config = ConfigDict(extra="forbid")


class Rollback(BaseModel):
    """Environments: back to the previous healthy release, once per failed commit."""

    model_config = ConfigDict(extra="forbid")


class Escalate(BaseModel):
    """One alert per incident (and one on recovery): POST JSON and/or append a JSON line."""

    model_config = ConfigDict(extra="forbid")

    webhook: WebUrl | None = None
    headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Sent with the webhook's POST; credentials: each value is a ${VAR}.",
    )
    file: str | None = Field(default=None, min_length=1)
    timeout: Timeout = Field(default=timedelta(seconds=10))

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name in headers:
            if not _HEADER_NAME.match(name):
                raise FieldError(f"invalid header name {name!r}", name)
        return headers

    @field_validator("file")
    @classmethod
    def _resolve(cls, file: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base_dir")
        if file is None or base is None:
            return file
        return str((Path(base) / file).resolve())

    @model_validator(mode="after")
    def _somewhere(self) -> Escalate:
        if self.webhook is None and self.file is None:
            raise ValueError("escalate needs a `webhook` URL and/or a `file`")
        return self


class RemediationStep(BaseModel):
    """One step of the remediation list: exactly one of retry, resync, rollback, escalate."""

    model_config = ConfigDict(extra="forbid")

    retry: Retry | None = None
    resync: Resync | None = None
    rollback: Rollback | None = None
    escalate: Escalate | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RemediationStep:
        given = [
            name for name in ("retry", "resync", "rollback", "escalate") if getattr(self, name)
        ]
        if len(given) != 1:
            raise ValueError(
                "each remediation step is exactly one of retry, resync, rollback, escalate"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    @property
    def name(self) -> str:
        """retry | resync | rollback | escalate."""
        return next(n for n in ("retry", "resync", "rollback", "escalate") if getattr(self, n))


class HealthPolicySpec(BaseModel):
    """`spec:` of a HealthPolicy."""

    model_config = ConfigDict(extra="forbid")

    selector: Selector
    interval: Duration = Field(default=timedelta(minutes=5))
    suspend: bool = Field(default=False, description="Report Suspended; run no remediation.")
    checks: list[HealthCheck] = Field(min_length=1)
    remediation: list[RemediationStep] = Field(default_factory=list)

    @field_validator("interval")
    @classmethod
    def _positive(cls, interval: timedelta) -> timedelta:
        if interval.total_seconds() < 1:
            raise ValueError("interval must be at least 1s")
        return interval

    @model_validator(mode="after")
    def _checks_fit_the_kinds(self) -> HealthPolicySpec:
        # `deployment` and `taxonomy` checks only mean something for their own kind.
        for index, check in enumerate(self.checks):
            if (
                isinstance(check, KindCheck)
                and self.selector.kinds
                and check.kind not in self.selector.kinds
            ):
                raise FieldError(
                    f"a {check.type} check applies to {check.kind} resources only; "
                    "the selector picks none",
                    "checks",
                    index,
                    "type",
                )
        return self

    @model_validator(mode="after")
    def _rollback_needs_environments(self) -> HealthPolicySpec:
        for index, step in enumerate(self.remediation):
            if (
                step.rollback is not None
                and self.selector.kinds
                and ("Environment" not in self.selector.kinds)
            ):
                raise FieldError(
                    "rollback applies to Environments only; the selector picks none",
                    "remediation",
                    index,
                    "rollback",
                )
            if step.name in {s.name for s in self.remediation[:index]}:
                raise FieldError(f"{step.name} is listed twice", "remediation", index)
        return self
