"""The Taxonomy spec: terms, term merges, target files and the conflict strategy.

Field checks live on the fields; checks across terms (unique ids, references that
resolve, no parent cycle, unambiguous aliases) are in `speccheck` and report every
problem at once, each at its own field and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cached_property
from pathlib import PurePosixPath
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from reconciler.git import Remote
from reconciler.kinds.base.locations import Credentials, Location, Password
from reconciler.kinds.taxonomy.collector import collector_paused
from reconciler.kinds.taxonomy.folding import Fold, fold
from reconciler.kinds.taxonomy.speccheck import spec_errors
from reconciler.kinds.taxonomy.terms import Taxonomy, Term
from reconciler.kinds.taxonomy.termsource import check_with_terms, load_terms
from reconciler.specs.types import FieldError

T = TypeVar("T")
_TERM_ID = re.compile(r"^[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*\Z")
_BRANCH_BAD = re.compile(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|//|^/|/\Z|\.lock\Z|^-")
_SUFFIXES = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


def check_term_id(value: str) -> str:
    """Accept a term id: letters, digits, '_', separated by single '.' or '-'."""
    if len(value) > 200 or not _TERM_ID.match(value):
        raise ValueError(
            f"invalid term id {value!r}: use letters, digits and '_', separated by '.' or '-'"
        )
    return value


TermId = Annotated[str, AfterValidator(check_term_id)]


class TermSpec(BaseModel):
    """One term as written in a spec."""

    model_config = ConfigDict(extra="forbid")

    id: TermId
    label: str = Field(min_length=1)
    parent: TermId | None = None
    aliases: list[str] = Field(default_factory=list)
    related: list[TermId] = Field(default_factory=list)
    description: str | None = None
    deprecated: bool = False
    replacedBy: TermId | None = None

    @field_validator("label")
    @classmethod
    def _label(cls, label: str) -> str:
        if not label.strip():
            raise ValueError("a label cannot be blank")
        return label

    @field_validator("aliases", "related")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        seen: list[str] = []
        for index, value in enumerate(values):
            if not value.strip():
                raise FieldError("blank entry", index)
            if value.casefold() in seen:
                raise FieldError(f"{value!r} is listed twice", index)
            seen.append(value.casefold())
        return values

    def term(self) -> Term:
        """The merge's view of this term."""
        return Term(
            id=self.id,
            label=self.label,
            parent=self.parent,
            aliases=frozenset(self.aliases),
            related=frozenset(self.related),
            description=self.description or None,
            deprecated=self.deprecated,
            replaced_by=self.replacedBy,
        )


class MergeSpec(BaseModel):
    """`{from: OLD, into: NEW}`: fold OLD into NEW."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    from_: TermId = Field(alias="from")
    into: TermId
    keepTombstone: bool = Field(
        default=True, description="Keep OLD as a deprecated term with replacedBy: NEW."
    )


class TargetSpec(Credentials):
    """A file in a git repository that carries the taxonomy."""

    model_config = ConfigDict(extra="forbid")
    url_field = "repo"

    repo: Location = Field(description="Path, file://, git://, http(s):// or ssh://.")
    branch: str = "main"
    path: str = Field(min_length=1, description="The file's path inside the repository.")
    format: Literal["json", "yaml"] | None = Field(
        default=None, description="Default: from the path's suffix (.json, .yaml, .yml)."
    )
    username: str | None = None
    password: Password = None

    @field_validator("branch")
    @classmethod
    def _branch(cls, branch: str) -> str:
        branch = branch.removeprefix("refs/heads/")
        if not branch or _BRANCH_BAD.search(branch):
            raise ValueError(f"invalid branch name {branch!r}")
        return branch

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        parts = path.split("/")  # not PurePosixPath(...).parts, which drops '.' components
        if path.startswith("/") or path.endswith("/") or "\\" in path:
            raise ValueError("a relative path inside the repository, like taxonomy/index.json")
        # `.GIT`, `.git.` and `.git ` are `.git` to case-insensitive or Windows checkouts.
        if any(p in (".", "..") or p.casefold().rstrip(". ") == ".git" for p in parts) or (
            "//" in path
        ):
            raise ValueError("the path may not contain '.', '..' or '.git' components")
        return path

    @model_validator(mode="after")
    def _format(self) -> TargetSpec:
        # After the base's check of the credentials (pydantic runs a base's validators first).
        if self.format is None:
            self.format = _SUFFIXES.get(PurePosixPath(self.path).suffix.lower())  # type: ignore[assignment]
            if self.format is None:
                raise FieldError("cannot tell from the path: set format: json or yaml", "path")
        return self

    def remote(self) -> Remote:
        """The repository, with its credentials."""
        return self.remote_at(self.repo)

    @property
    def unit(self) -> str:
        """The target's name in plans, state and history: `REPO@BRANCH:PATH`."""
        return f"{self.repo}@{self.branch}:{self.path}"


class TermsFrom(BaseModel):
    """`termsFrom: {file: terms.json, format: json}`: the terms kept in a file beside the
    spec. Its digest is part of the spec's (dumped with it), so an edit of the file is a
    change of the spec."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(min_length=1, description="Relative to the spec file, inside its directory.")
    format: Literal["json", "csv"] | None = Field(
        default=None, description="Default: from the file's suffix (.json, .csv)."
    )
    _digest: str = PrivateAttr(default="")

    @field_validator("file")
    @classmethod
    def _inside(cls, file: str) -> str:
        parts = file.replace("\\", "/").split("/")
        if file.startswith("/") or "\\" in file or ".." in parts:
            raise ValueError(
                "a path relative to the spec file, inside its directory (no '..', not absolute)"
            )
        return file

    @model_validator(mode="after")
    def _format(self) -> TermsFrom:
        if self.format is None:
            suffix = PurePosixPath(self.file).suffix.lower()
            self.format = {".json": "json", ".csv": "csv"}.get(suffix)  # type: ignore[assignment]
            if self.format is None:
                raise FieldError("cannot tell from the file name: set format: json or csv", "file")
        return self

    @model_serializer(mode="wrap")
    def _with_digest(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        data: dict[str, object] = handler(self)
        data["digest"] = self._digest
        return data


class TaxonomySpec(BaseModel):
    """`spec:` of a Taxonomy."""

    model_config = ConfigDict(extra="forbid")

    terms: list[TermSpec] = Field(default_factory=list)
    termsFrom: TermsFrom | None = Field(
        default=None, description="Read the terms from a JSON or CSV file instead of `terms`."
    )
    merges: list[MergeSpec] = Field(default_factory=list)
    targets: list[TargetSpec] = Field(min_length=1)
    conflictStrategy: Literal["spec", "target", "fail"] = Field(
        default="spec", description="Who wins a conflict: spec, target, or fail (block)."
    )

    _file_terms: list[Term] | None = PrivateAttr(default=None)
    _memo: dict[tuple[object, ...], object] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TaxonomySpec:
        with collector_paused():
            return self._checked(info)

    def _checked(self, info: ValidationInfo) -> TaxonomySpec:
        if self.termsFrom is None:
            errors = spec_errors(self)
        else:
            read, errors = load_terms(self, self.termsFrom, (info.context or {}).get("base_dir"))
            self.termsFrom._digest = read.digest
            if not errors:
                self._file_terms = read.terms
                errors = check_with_terms(self, read)
                read.items = []  # what placing a problem needed
        if errors:
            raise ValidationError.from_exception_data("TaxonomySpec", errors)
        return self

    @cached_property
    def term_list(self) -> list[Term]:
        """The terms in the order written (in `terms` or in the `termsFrom` file), before
        the term merges."""
        if self._file_terms is not None:
            return self._file_terms
        return [t.term() for t in self.terms]

    def folds(self) -> list[Fold]:
        """The term merges, in order."""
        return [Fold(m.from_, m.into, m.keepTombstone) for m in self.merges]

    @cached_property
    def taxonomy(self) -> Taxonomy:
        """The terms after the term merges: the `ours` side of every merge."""
        return fold({t.id: t for t in self.term_list}, self.folds())

    def memo(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        """`compute()`, once per `key` for this spec: what plan computed from the spec and an
        observation (its content's digest, a target's merge) apply reuses in the same
        process instead of computing it again. Only pure results of the spec and the key."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]

    def target(self, unit: str) -> TargetSpec | None:
        """The target named `unit`, if it is still in the spec."""
        return next((t for t in self.targets if t.unit == unit), None)
