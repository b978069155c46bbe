"""The Mirror spec: which repositories are mirrored where, with which refs and rules."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from reconciler.git import Remote
from reconciler.kinds.base.locations import Credentials, Location, Password
from reconciler.specs.types import FieldError, RefGlob

REPO_PLACEHOLDER = "{repo}"
# What fills `{repo}`, listed or discovered: safe as a path component and in any URL, never
# read as an option (no leading '-') nor hidden (no leading '.').
_REPO_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


def repo_name_problem(name: str) -> str | None:
    """Why `name` cannot be a repository name (in `repos`, or found by `repos: ["*"]`), or
    None when it can."""
    if not _REPO_NAME.match(name) or name.endswith("."):
        return (
            "not a usable repository name (letters, digits, _ . + -; "
            "not starting with - or ., not ending with .)"
        )
    return None


class RemoteSpec(Credentials):
    """A repository URL (or path), with credentials for http(s) given by `${VAR}`."""

    model_config = ConfigDict(extra="forbid")
    url_field = "url"

    url: Location = Field(description="Path, file://, git://, http(s):// or ssh:// URL.")
    username: str | None = None
    password: Password = None

    def remote(self, repo: str | None = None) -> Remote:
        """The concrete remote, with `{repo}` filled in."""
        return self.remote_at(self.url.replace(REPO_PLACEHOLDER, repo) if repo else self.url)


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
            raise FieldError(
                '"*" stands alone: it already means every repository', repos.index("*")
            )
        for index, name in enumerate(repos):
            if name != "*" and repo_name_problem(name):
                raise FieldError(f"invalid repository name {name!r}", index)
            if name in repos[:index]:
                raise FieldError(f"repository {name!r} is listed twice", index)
        return repos

    @model_validator(mode="after")
    def _consistent(self) -> MirrorSpec:
        # Errors name the field at fault (FieldError), so the message points at its line.
        urls: list[tuple[tuple[str | int, ...], str]] = [
            (("source", "url"), self.source.url),
            *((("destinations", i, "url"), d.url) for i, d in enumerate(self.destinations)),
        ]
        for loc, url in urls:
            if self.repos is not None and REPO_PLACEHOLDER not in url:
                raise FieldError(
                    "with `repos`, the source and every destination URL must contain {repo}",
                    *loc,
                )
            if self.repos is None and REPO_PLACEHOLDER in url:
                raise FieldError("the URL contains {repo} but `repos` is not set", *loc)
        if self.repos == ["*"] and not Remote(self.source.url).is_local:
            raise FieldError(
                'repos: ["*"] discovers repositories in a local directory of bare '
                "repositories; list the names for a network source",
                "repos",
            )
        if self.repos == ["*"] and "/" in self.source.url.split(REPO_PLACEHOLDER, 1)[1]:
            raise FieldError(
                "for discovery, {repo} must be in the last path component of the source",
                "source",
                "url",
            )
        destinations = [d.url for d in self.destinations]
        for index, url in enumerate(destinations):
            if url == self.source.url:
                raise FieldError("a destination is the source itself", "destinations", index, "url")
            if url in destinations[:index]:
                first = destinations.index(url)
                raise FieldError(
                    f"the same destination as destinations[{first}]", "destinations", index, "url"
                )
        return self
