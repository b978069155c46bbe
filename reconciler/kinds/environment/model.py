"""The Environment spec: which ref of which repository runs where, and how it is checked."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.git import Remote
from reconciler.kinds.base.locations import Credentials, check_location
from reconciler.specs.types import (
    Command,
    Duration,
    Env,
    FieldError,
    ResourceName,
    Timeout,
    WebUrl,
)


class SourceSpec(Credentials):
    """`{repo: URL-or-path, ref}` or `{mirror: NAME, repo: NAME, ref}` (a Mirror's destination)."""

    model_config = ConfigDict(extra="forbid")

    repo: str = Field(min_length=1, description="URL or path; with `mirror`, a repository name.")
    ref: str = Field(min_length=1, description="Branch, tag or commit sha.")
    mirror: ResourceName | None = Field(default=None, description="Deploy from this Mirror.")
    username: str | None = None
    password: SecretStr | None = None  # not `Password`: the JSON Schema has no description here

    @field_validator("ref")
    @classmethod
    def _ref(cls, ref: str) -> str:
        if any(c in ref for c in " ~^:?*[\\") or ".." in ref:
            raise ValueError(f"invalid ref {ref!r}")
        return ref

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> SourceSpec:
        if self.mirror is not None:
            if "/" in self.repo or self.repo in (".", ".."):
                raise ValueError("with `mirror`, `repo` is a repository name of that mirror")
            return self
        try:
            self.repo = check_location(self.repo, info.context)
        except ValueError as error:
            raise FieldError(str(error), "repo") from None
        # Separated here, not by the base: only without `mirror`, after the location check.
        self.repo = self.separate(self.repo, "repo")
        return self

    def remote(self, url: str | None = None) -> Remote:
        """The repository to fetch from (`url` given for a mirror source)."""
        return self.remote_at(url or self.repo)


class TargetSpec(BaseModel):
    """Where releases live: `releases/<n>-<shortsha>/` and the `current` link."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _absolute(cls, path: str, info: ValidationInfo) -> str:
        base = (info.context or {}).get("base_dir")
        resolved = Path(base) / path if base is not None else Path(path)
        return str(resolved.resolve()) if base is not None else path


class Hook(BaseModel):
    """A command run without a shell in the release directory."""

    model_config = ConfigDict(extra="forbid")

    run: Command
    timeout: Timeout = Field(default=timedelta(minutes=5))
    env: Env | None = None


class Check(BaseModel):
    """`{run: [...]}` passes on exit 0; `{http: URL, status, contains}` on that answer."""

    model_config = ConfigDict(extra="forbid")

    run: Command | None = None
    http: WebUrl | None = Field(default=None, description="URL to GET.")
    status: int | None = Field(default=None, ge=100, le=599, description="http: default 200.")
    contains: str | None = Field(default=None, description="http: a body substring.")
    timeout: Timeout | None = Field(default=None, description="Default 30s (run), 5s (http).")
    retries: int = Field(default=0, ge=0, le=100)
    interval: Duration = Field(default=timedelta(seconds=1))
    env: Env | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Check:
        if (self.run is None) == (self.http is None):
            raise ValueError("a check has either `run` (a command) or `http` (a URL)")
        if self.run is not None and (self.status is not None or self.contains is not None):
            raise ValueError("`status` and `contains` belong to `http` checks")
        if self.http is not None and self.env:
            raise FieldError("`env` belongs to `run` checks: an http check runs nothing", "env")
        return self

    def hook(self) -> Hook:
        """A command check as the hook it runs."""
        assert self.run is not None
        return Hook(run=self.run, timeout=self.timeout or timedelta(seconds=30), env=self.env)


class EnvironmentSpec(BaseModel):
    """`spec:` of an Environment."""

    model_config = ConfigDict(extra="forbid")

    source: SourceSpec
    target: TargetSpec
    strategy: Literal["rolling", "blue-green"] = "rolling"
    build: list[Hook] = Field(default_factory=list)
    activate: list[Hook] = Field(default_factory=list)
    verify: list[Check] = Field(default_factory=list)
    preview: list[Check] | None = Field(
        default=None,
        description="blue-green: checks of the idle slot before the switch "
        "(default: the command checks of verify).",
    )
    autoRollback: bool = True
    requires: list[ResourceName] = Field(default_factory=list)
    keepReleases: int = Field(default=5, ge=1, le=1000)

    @model_validator(mode="after")
    def _preview_is_blue_green(self) -> EnvironmentSpec:
        if self.preview is not None and self.strategy != "blue-green":
            raise FieldError(
                "preview checks the idle slot of a blue-green deploy: set "
                "strategy: blue-green, or move these checks to verify",
                "preview",
            )
        return self

    def preview_checks(self) -> list[Check]:
        """What runs against the idle slot in blue-green before `current` moves."""
        if self.preview is not None:
            return list(self.preview)
        return [c for c in self.verify if c.run is not None]
