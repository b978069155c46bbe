"""Turning a directory of YAML files into validated Resources, reporting every problem at once."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from reconciler.errors import SpecError, SpecProblem
from reconciler.specs.envelope import Envelope, Resource, SpecSet
from reconciler.specs.interpolation import MissingVariable, interpolate
from reconciler.specs.yamldocs import (
    YamlSyntaxError,
    field_path,
    line_of,
    read_documents,
    to_plain,
)

SPEC_SUFFIXES = (".yaml", ".yml")
Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


def load_directory(
    root: Path,
    kinds: Mapping[str, type[BaseModel]],
    *,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    commit: str | None = None,
    display_root: str | None = None,
) -> SpecSet:
    """Load every spec under `root`; raise SpecError listing every problem found."""
    environ = os.environ if environ is None else environ
    if not root.is_dir():
        raise SpecError([SpecProblem(str(root), None, "specs directory not found")])
    problems: list[SpecProblem] = []
    resources: list[Resource] = []
    for path in spec_files(root):
        display = _display(path, root, display_root)
        resources += _load_file(path, display, kinds, environ, problems)
    _check_unique(resources, problems)
    if problems:
        raise SpecError(problems)
    return SpecSet(source=source or str(root), commit=commit, resources=tuple(resources))


def spec_files(root: Path) -> list[Path]:
    """Every `*.yaml` / `*.yml` file under `root`, skipping hidden files and directories."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in filenames
            if f.endswith(SPEC_SUFFIXES) and not f.startswith(".")
        ]
    return sorted(found)


def _display(path: Path, root: Path, display_root: str | None) -> str:
    if display_root is not None:
        return f"{display_root}/{path.relative_to(root).as_posix()}"
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _load_file(
    path: Path,
    display: str,
    kinds: Mapping[str, type[BaseModel]],
    environ: Mapping[str, str],
    problems: list[SpecProblem],
) -> list[Resource]:
    try:
        text = path.read_text(encoding="utf-8")
        documents = list(read_documents(text))
    except UnicodeDecodeError:
        problems.append(SpecProblem(display, None, "not UTF-8 text"))
        return []
    except YamlSyntaxError as error:
        problems.append(SpecProblem(display, error.line, str(error)))
        return []
    loaded = []
    for document, line in documents:
        resource = _load_document(document, line, path, display, kinds, environ, problems)
        if resource is not None:
            loaded.append(resource)
    return loaded


def _load_document(
    document: Any,
    line: int,
    path: Path,
    display: str,
    kinds: Mapping[str, type[BaseModel]],
    environ: Mapping[str, str],
    problems: list[SpecProblem],
) -> Resource | None:
    if not isinstance(document, CommentedMap):
        problems.append(SpecProblem(display, line, "a spec document must be a mapping"))
        return None
    before = len(problems)
    address = _address_hint(document)
    _interpolate_tree(document, (), environ, display, line, address, problems)
    envelope = _validate(Envelope, document, (), display, line, address, problems)
    if envelope is None or len(problems) > before:
        return None
    model = kinds.get(envelope.kind)
    if model is None:
        valid = ", ".join(sorted(kinds))
        problems.append(
            SpecProblem(
                display,
                line_of(document, ("kind",), line),
                f"unknown kind {envelope.kind!r}; valid kinds: {valid}",
                address,
                "kind",
            )
        )
        return None
    context = {"base_dir": path.parent}
    spec = _validate(model, document["spec"], ("spec",), display, line, address, problems, context)
    if spec is None:
        return None
    return Resource(
        kind=envelope.kind,
        name=envelope.metadata.name,
        spec=spec,
        file=display,
        line=line,
        base_dir=path.parent,
        labels=dict(envelope.metadata.labels),
        depends_on=tuple(envelope.metadata.dependsOn),
    )


def _address_hint(document: CommentedMap) -> str | None:
    kind, metadata = document.get("kind"), document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{kind}/{name}" if isinstance(kind, str) and isinstance(name, str) else None


def _validate(
    model: type[M],
    node: Any,
    prefix: Loc,
    display: str,
    line: int,
    address: str | None,
    problems: list[SpecProblem],
    context: dict[str, Any] | None = None,
) -> M | None:
    try:
        return model.model_validate(to_plain(node), context=context)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            loc: Loc = tuple(detail["loc"])
            problems.append(
                SpecProblem(
                    display,
                    line_of(node, loc, line),
                    _message(detail, model, loc),
                    address,
                    field_path(prefix + loc) or None,
                )
            )
        return None


def _message(detail: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        valid = f"; valid fields: {', '.join(fields)}" if fields else ""
        return f"unknown field{valid}"
    message = str(detail["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message[:1].lower() + message[1:]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names of the model found at `loc`, for 'valid fields: ...'."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return []
        if isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        current = _inner_model(info.annotation) if info else None
    return sorted(current.model_fields) if current else []


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None


def _interpolate_tree(
    node: Any,
    loc: Loc,
    environ: Mapping[str, str],
    display: str,
    line: int,
    address: str | None,
    problems: list[SpecProblem],
) -> None:
    """Expand `${VAR}` in every string value of `node`, in place (keys are left alone)."""
    items: list[tuple[Any, Any]]
    if isinstance(node, CommentedMap):
        items = list(node.items())
    elif isinstance(node, CommentedSeq):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        here = (*loc, key)
        if isinstance(value, str) and "$" in value:
            try:
                node[key] = interpolate(value, environ)
            except MissingVariable as error:
                problems.append(
                    SpecProblem(
                        display, line_of(node, (key,), line), str(error), address, field_path(here)
                    )
                )
        else:
            _interpolate_tree(value, here, environ, display, line, address, problems)


def _check_unique(resources: list[Resource], problems: list[SpecProblem]) -> None:
    seen: dict[str, Resource] = {}
    for resource in resources:
        first = seen.setdefault(resource.address, resource)
        if first is not resource:
            problems.append(
                SpecProblem(
                    resource.file,
                    resource.line,
                    f"duplicate address (first defined at {first.location})",
                    resource.address,
                    "metadata.name",
                )
            )
