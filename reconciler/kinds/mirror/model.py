"""The Mirror spec: which repositories are mirrored where, with which refs and rules."""

from __future__ import annotations

import re
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
from reconciler.redaction import strip_userinfo
from reconciler.specs.types import RefGlob

REPO_PLACEHOLDER = "{repo}"
_REPO_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SUPPORTED = ("file", "git", "http", "https", "ssh", "git+ssh")


class RemoteSpec(BaseModel):
    """A repository URL (or path), with credentials for http(s) given by `${VAR}`."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="Path, file://, git://, http(s):// or ssh:// URL.")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="Use ${VAR}; never stored.")

    @field_validator("url")
    @classmethod
    def _resolve(cls, url: str, info: ValidationInfo) -> str:
        url = url.strip()
        remote = Remote(url)
        if remote.scheme not in _SUPPORTED:
            raise ValueError(
                f"unsupported URL scheme {remote.scheme!r}; use a path or one of "
                "file://, git://, http://, https://, ssh://"
            )
        base = (info.context or {}).get("base_dir")
        if remote.is_local and not url.startswith("file:") and base is not None:
            return str((Path(base) / url).resolve()) if not Path(url).is_absolute() else url
        return url

    @model_validator(mode="after")
    def _credentials(self) -> RemoteSpec:
        url, user, password = strip_userinfo(self.url)
        if password is not None:
            raise ValueError(
                "put credentials in username/password (password: ${VAR}), not in the URL"
            )
        if user is not None:
            self.url, self.username = url, self.username or user
        scheme = Remote(self.url).scheme
        if self.password is not None and scheme not in ("http", "https"):
            raise ValueError("a password is only used with http(s) URLs")
        return self

    def remote(self, repo: str | None = None) -> Remote:
        """The concrete remote, with `{repo}` filled in."""
        url = self.url.replace(REPO_PLACEHOLDER, repo) if repo else self.url
        password = self.password.get_secret_value() if self.password else None
        return Remote(url, self.username, password)


class MirrorSpec(BaseModel):
    """`spec:` of a Mirror."""

    model_config = ConfigDict(extra="forbid")

    source: RemoteSpec
    destinations: list[RemoteSpec] = Field(min_length=1)
    repos: list[str] | None = Field(
        default=None,
        description='Organisation form: repository names, or ["*"] for every repository '
        "of the source directory; URLs then contain {repo}.",
    )
    branches: list[RefGlob] = Field(default_factory=lambda: ["*"])
    tags: list[RefGlob] = Field(default_factory=lambda: ["*"])
    prune: bool = False
    conflictStrategy: Literal["fail", "force", "skip"] = "fail"

    @field_validator("repos")
    @classmethod
    def _repo_names(cls, repos: list[str] | None) -> list[str] | None:
        if repos is None:
            return None
        if not repos:
            raise ValueError('empty list: name repositories, or use ["*"] for all of them')
        if "*" in repos and len(repos) > 1:
            raise ValueError('"*" stands alone: it already means every repository')
        for name in repos:
            if name != "*" and (not _REPO_NAME.match(name) or name.endswith(".")):
                raise ValueError(f"invalid repository name {name!r}")
        if len(set(repos)) != len(repos):
            raise ValueError("a repository is listed twice")
        return repos

    @model_validator(mode="after")
    def _consistent(self) -> MirrorSpec:
        urls = [self.source.url, *(d.url for d in self.destinations)]
        templated = [REPO_PLACEHOLDER in url for url in urls]
        if self.repos is not None and not all(templated):
            raise ValueError(
                "with `repos`, the source and every destination URL must contain {repo}"
            )
        if self.repos is None and any(templated):
            raise ValueError("a URL contains {repo} but `repos` is not set")
        if self.repos == ["*"] and not Remote(self.source.url).is_local:
            raise ValueError(
                'repos: ["*"] discovers repositories in a local directory of bare '
                "repositories; list the names for a network source"
            )
        if self.repos == ["*"] and "/" in self.source.url.split(REPO_PLACEHOLDER, 1)[1]:
            raise ValueError(
                "for discovery, {repo} must be in the last path component of the source"
            )
        destinations = [d.url for d in self.destinations]
        if len(set(destinations)) != len(destinations):
            raise ValueError("a destination is listed twice")
        if self.source.url in destinations:
            raise ValueError("a destination is the source itself")
        return self
