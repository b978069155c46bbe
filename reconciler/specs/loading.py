"""Turning a directory of YAML files into validated Resources, reporting every problem at once."""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar

from reconciler.errors import SpecError, SpecProblem
from reconciler.specs.envelope import Envelope, Resource, SpecSet
from reconciler.specs.interpolation import InterpolationError, interpolate
from reconciler.specs.types import FieldError
from reconciler.specs.yamldocs import (
    MAX_DEPTH,
    YamlSyntaxError,
    field_path,
    line_of,
    read_documents,
    to_plain,
    too_deep,
)

SPEC_SUFFIXES = (".yaml", ".yml")
Loc = tuple[str | int, ...]
_YAML_TAGS = "tag:yaml.org,2002:"
_STR_TAG = _YAML_TAGS + "str"
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
        data = path.read_bytes()
        text = data.decode("utf-8")
        documents = list(read_documents(text))
    except OSError as error:
        problems.append(SpecProblem(display, None, f"cannot read: {error.strerror or error}"))
        return []
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = data[error.start : error.start + 1].hex()
        problems.append(
            SpecProblem(display, line, f"not UTF-8 text (byte 0x{byte}); save it as UTF-8")
        )
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
    address = _address_hint(document)
    deep = too_deep(document, line)
    if deep is not None:
        message = f"nested deeper than {MAX_DEPTH} levels"
        problems.append(SpecProblem(display, deep, message, address))
        return None
    before = len(problems)
    from_environment: set[Loc] = set()
    _interpolate_tree(document, (), environ, display, line, address, problems, from_environment)
    unresolved = {p.field for p in problems[before:]}
    interpolated = len(problems)
    # The envelope and the spec are checked independently, so every problem shows at once.
    envelope = _validate(Envelope, document, (), display, line, address, problems)
    kind, spec_node = document.get("kind"), document.get("spec")
    model = kinds.get(kind) if isinstance(kind, str) else None
    if isinstance(kind, str) and model is None:
        valid = ", ".join(sorted(kinds))
        problems.append(
            SpecProblem(
                display,
                line_of(document, ("kind",), line),
                f"unknown kind {kind!r}; valid kinds: {valid}",
                address,
                "kind",
            )
        )
    spec = None
    if model is not None and isinstance(spec_node, CommentedMap):
        context = {"base_dir": path.parent}
        spec_line = line_of(document, ("spec",), line)  # a missing spec field: the `spec:` line
        spec = _validate(
            model, spec_node, ("spec",), display, spec_line, address, problems, context
        )
    # A value whose ${VAR} could not be expanded was reported once; not again as invalid.
    problems[interpolated:] = [p for p in problems[interpolated:] if p.field not in unresolved]
    if spec is not None:
        for loc in _secret_locs(spec, ("spec",)):
            if loc not in from_environment:
                problems.append(
                    SpecProblem(
                        display,
                        line_of(document, loc, line),
                        "a credential is read from the environment: write it as ${VAR}",
                        address,
                        field_path(loc),
                    )
                )
    if envelope is None or spec is None or len(problems) > before:
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
        drift_policy=envelope.metadata.driftPolicy,
        lines=field_lines(document),
    )


def field_lines(node: Any, loc: Loc = (), depth: int = 3) -> dict[str, int]:
    """`field.path` -> line of the mappings' keys down to `depth` levels (for later messages)."""
    found: dict[str, int] = {}
    if depth == 0 or not isinstance(node, CommentedMap):
        return found
    for key in node:
        here = (*loc, str(key))
        found[field_path(here)] = line_of(node, (key,), 0)
        found.update(field_lines(node[key], here, depth - 1))
    return found


def _address_hint(document: CommentedMap) -> str | None:
    kind, metadata = document.get("kind"), document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return f"{kind}/{name}" if isinstance(kind, str) and isinstance(name, str) and name else None


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
            loc: Loc = tuple(detail["loc"]) + _inner_loc(detail)
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


def _inner_loc(detail: ErrorDetails) -> Loc:
    """The field a model validator blamed (FieldError), below the error's own location."""
    error = detail.get("ctx", {}).get("error")
    return error.loc if isinstance(error, FieldError) else ()


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
    from_environment: set[Loc],
) -> None:
    """Expand `${VAR}` in every string value of `node`, in place (keys are left alone);
    remember in `from_environment` where a value came from a variable."""
    items: list[tuple[Any, Any]]
    if isinstance(node, CommentedMap):
        items = list(node.items())
    elif isinstance(node, CommentedSeq):
        items = list(enumerate(node))
    else:
        return
    for key, value in items:
        here = (*loc, key)
        tag = _explicit_tag(value)
        if tag == _STR_TAG:  # `!!str 1.0`: a string, like any other
            value = node[key] = str(value.value)
        elif tag is not None and not tag.startswith(_YAML_TAGS):
            problems.append(
                SpecProblem(
                    display,
                    line_of(node, (key,), line),
                    f"unsupported YAML tag {tag}: use plain values, and ${{VAR}} for secrets",
                    address,
                    field_path(here),
                )
            )
            continue
        if isinstance(value, str) and "$" in value:
            if "${" in value:
                from_environment.add(here)
            try:
                node[key] = interpolate(value, environ)
            except InterpolationError as error:
                problems.append(
                    SpecProblem(
                        display, line_of(node, (key,), line), str(error), address, field_path(here)
                    )
                )
        else:
            _interpolate_tree(
                value, here, environ, display, line, address, problems, from_environment
            )


def _secret_locs(value: Any, loc: Loc) -> list[Loc]:
    """Where SecretStr values sit in a validated model (field names are the YAML keys)."""
    if isinstance(value, SecretStr):
        return [loc]
    if isinstance(value, BaseModel):
        return [
            found
            for name in type(value).model_fields
            for found in _secret_locs(getattr(value, name), (*loc, name))
        ]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _secret_locs(item, (*loc, i))]
    return []


def _explicit_tag(value: Any) -> str | None:
    """The tag written on a value (`!vault x`, `!!str 5`), or None."""
    if isinstance(value, TaggedScalar | CommentedMap | CommentedSeq):
        tag = value.tag.value
        return str(tag) if tag else None
    return None


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
