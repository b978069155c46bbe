"""Turning a directory of YAML files into validated Resources, reporting every problem at once."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from ruamel.yaml.comments import (
    CommentedMap,
    CommentedOrderedMap,
    CommentedSeq,
    CommentedSet,
    TaggedScalar,
)

from reconciler.errors import SpecError, SpecProblem
from reconciler.redaction import in_minimal_environment
from reconciler.specs.envelope import Envelope, Resource, SpecSet
from reconciler.specs.interpolation import (
    InterpolationError,
    interpolate,
    single_variable,
    variable_names,
)
from reconciler.specs.types import FieldError
from reconciler.specs.yamldocs import (
    MAX_DEPTH,
    Document,
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
_PLAIN_TAGS = (_YAML_TAGS + "map", _YAML_TAGS + "seq")  # `!!map {}`: a mapping, like any other
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
    loops: list[Path] = []
    for path in spec_files(root, loops):
        display = _display(path, root, display_root)
        resources += _load_file(path, display, kinds, environ, problems)
    for link in loops:
        shown = _display_dir(Path(os.path.realpath(link)), root, display_root)
        problems.append(
            SpecProblem(
                _display(link, root, display_root),
                None,
                f"directory link loops: it leads back to {shown}, a directory it is in",
            )
        )
    _check_unique(resources, problems)
    if problems:
        raise SpecError(problems)
    return SpecSet(source=source or str(root), commit=commit, resources=tuple(resources))


def spec_files(root: Path, loops: list[Path] | None = None) -> list[Path]:
    """Every `*.yaml` / `*.yml` file under `root`, skipping hidden files and directories.
    Links are followed, to directories as to files, wherever they point; a directory link
    that leads back to a directory it is inside of is not followed but added to `loops`."""
    found = []
    inside: dict[str, tuple[str, ...]] = {str(root): (os.path.realpath(root),)}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        chain = inside[dirpath]
        kept = []
        for name in sorted(d for d in dirnames if not d.startswith(".")):
            path = os.path.join(dirpath, name)
            real = os.path.realpath(path)
            if real in chain:
                if loops is not None:
                    loops.append(Path(path))
                continue
            inside[path] = (*chain, real)
            kept.append(name)
        dirnames[:] = kept
        found += [
            Path(dirpath) / f
            for f in filenames
            if f.endswith(SPEC_SUFFIXES) and not f.startswith(".")
        ]
    return sorted(found)


def spec_digest(root: Path) -> str:
    """A digest of the names and contents of the spec files under `root`: what a load of
    `root` reads (two equal digests: the files did not change in between)."""
    digest = hashlib.sha256()
    for path in spec_files(root):
        try:
            data = path.read_bytes()
        except OSError as error:
            data = f"unreadable: {error.errno}".encode()
        digest.update(f"{path}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def _display(path: Path, root: Path, display_root: str | None) -> str:
    if display_root is not None:
        return f"{display_root}/{path.relative_to(root).as_posix()}"
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def _display_dir(real: Path, root: Path, display_root: str | None) -> str:
    """A directory's real path as messages show it: under the specs root as its files are."""
    top = root.resolve()
    if real == top:
        return display_root or _display(root, root, None)
    if real.is_relative_to(top):
        return _display(root / real.relative_to(top), root, display_root)
    return str(real)


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
    for document in documents:
        resource = _load_document(document, path, display, kinds, environ, problems)
        if resource is not None:
            loaded.append(resource)
    return loaded


def _load_document(
    read: Document,
    path: Path,
    display: str,
    kinds: Mapping[str, type[BaseModel]],
    environ: Mapping[str, str],
    problems: list[SpecProblem],
) -> Resource | None:
    document, line = read.data, read.line
    if not isinstance(document, CommentedMap):
        problems.append(SpecProblem(display, line, "a spec document must be a mapping"))
        return None
    address = _address_hint(document)
    root_tag = _explicit_tag(document)
    if root_tag is not None and root_tag not in _PLAIN_TAGS:
        problems.append(SpecProblem(display, line, unsupported_tag(root_tag), address))
        return None
    if read.too_big is not None:  # checked first: nothing may walk the expanded document
        problems.append(SpecProblem(display, *read.too_big, address))
        return None
    deep = too_deep(document, line)
    if deep is not None:
        message = f"nested deeper than {MAX_DEPTH} levels"
        problems.append(SpecProblem(display, deep, message, address))
        return None
    before = len(problems)
    hidden = _environment_values(document, environ)
    written: dict[Loc, str] = {}  # each value with a `$` as written, before expansion
    _interpolate_tree(document, (), environ, display, line, address, problems, written)
    unresolved = {p.field for p in problems[before:] if p.field}
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
    # A value whose ${VAR} could not be expanded (or whose tag is refused) was reported
    # once; not again as invalid, nor anything inside it.
    problems[interpolated:] = [p for p in problems[interpolated:] if not _within(p, unresolved)]
    if spec is not None:
        for loc in _secret_locs(spec, ("spec",)):
            if not single_variable(written.get(loc, "")):
                problems.append(
                    SpecProblem(
                        display,
                        line_of(document, loc, line),
                        "a credential is read from the environment: write it as ${VAR} "
                        "(no default, no other text, one variable)",
                        address,
                        field_path(loc),
                    )
                )
    if len(problems) > before:
        problems[before:] = [_masked(p, hidden) for p in problems[before:]]
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
        env_secrets=_env_secrets(spec, written, environ),
    )


def _environment_values(document: Any, environ: Mapping[str, str]) -> set[str]:
    """The values of the variables the document's strings read (before expansion): any of
    them may be a credential, so no message shows them (as for the Redactor, 3+ chars)."""
    found: set[str] = set()
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack += node.values()
        elif isinstance(node, list):
            stack += node
        elif isinstance(node, str) and "${" in node:
            values = (environ.get(name) for name in variable_names(node))
            found.update(v for v in values if v is not None and len(v) >= 3)
    return found


def _masked(problem: SpecProblem, hidden: set[str]) -> SpecProblem:
    message = problem.message
    for value in sorted(hidden, key=len, reverse=True):
        message = message.replace(value, "***")
    return dataclasses.replace(problem, message=message) if message != problem.message else problem


def _within(problem: SpecProblem, fields: set[str]) -> bool:
    """Whether the problem is about one of `fields` or something inside one of them."""
    found = problem.field
    return found is not None and any(
        found == f or found.startswith((f + ".", f + "[")) for f in fields
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


_HINT = re.compile(r"[^\s/\x00-\x1f\x7f-\x9f\u2028\u2029]{1,100}")


def _address_hint(document: CommentedMap) -> str | None:
    """`Kind/name` as written, for messages; left out when either part is not one short
    printable word (it could span lines or pretend to be another message)."""
    kind, metadata = document.get("kind"), document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and isinstance(name, str) and _HINT.fullmatch(kind + name):
        return f"{kind}/{name}"
    return None


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
            raw: Loc = tuple(detail["loc"]) + _inner_loc(detail)
            loc = _written_loc(node, raw)
            problems.append(
                SpecProblem(
                    display,
                    line_of(node, loc, line),
                    _message(detail, model, raw),
                    address,
                    field_path(prefix + loc) or None,
                )
            )
        return None


def _written_loc(node: Any, loc: Loc) -> Loc:
    """`loc` as written in the YAML: without the tag pydantic adds for a discriminated union
    (`checks[0].http.status` is `checks[0].status`, the `http` being the check's `type`)."""
    written: list[str | int] = []
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        written.append(part)
        node = _child(node, part)
    return tuple(written)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _inner_loc(detail: ErrorDetails) -> Loc:
    """The field a model validator blamed (FieldError), below the error's own location."""
    error = detail.get("ctx", {}).get("error")
    return error.loc if isinstance(error, FieldError) else ()


def _message(detail: ErrorDetails, model: type[BaseModel], loc: Loc) -> str:
    kind = detail["type"]
    if kind == "missing":
        return "field required"
    if kind == "union_tag_not_found":
        field = str(detail.get("ctx", {}).get("discriminator", "type")).strip("'")
        return f"field required: {field}"
    if kind == "extra_forbidden":
        fields = _fields_at(model, loc[:-1])
        valid = f"; valid fields: {', '.join(fields)}" if fields else ""
        return f"unknown field{valid}"
    message = str(detail["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message[:1].lower() + message[1:]


def _fields_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The field names (as written) of the model found at pydantic's `loc`, whose parts may
    name a discriminated union's member by its tag (`checks, 0, http`)."""
    candidates = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        info = next((i for m in candidates if (i := _field_named(m, part)) is not None), None)
        if info is not None:
            candidates = _inner_models(info.annotation)
        else:  # a union's tag: the member whose `type` is that literal
            candidates = [m for m in candidates if _tag_of(m) == part]
    if len(candidates) != 1:
        return []
    return sorted(f.alias or name for name, f in candidates[0].model_fields.items())


def _field_named(model: type[BaseModel], written: str) -> FieldInfo | None:
    """The field written as `written` in YAML (its alias, like `from`, or its name)."""
    return next(
        (f for name, f in model.model_fields.items() if (f.alias or name) == written),
        model.model_fields.get(written),
    )


def _tag_of(model: type[BaseModel]) -> Any:
    """The literal value of a union member's `type` field (`syncLag`), or None."""
    info = model.model_fields.get("type")
    values = typing.get_args(info.annotation) if info else ()
    return values[0] if len(values) == 1 else None


def _inner_models(annotation: Any) -> list[type[BaseModel]]:
    """Every model inside an annotation (`list[A | B]` gives A and B)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for argument in typing.get_args(annotation) for m in _inner_models(argument)]


def _interpolate_tree(
    node: Any,
    loc: Loc,
    environ: Mapping[str, str],
    display: str,
    line: int,
    address: str | None,
    problems: list[SpecProblem],
    written: dict[Loc, str],
) -> None:
    """Expand `${VAR}` in every string value of `node`, in place (keys are left alone);
    remember in `written` each value with a `$` as it was written."""
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
        if tag is None and isinstance(key, TaggedScalar):  # `!vault password: x`
            tag = _explicit_tag(key)
        if tag == _STR_TAG and isinstance(value, TaggedScalar):  # `!!str 1.0`: a string
            value = node[key] = str(value.value)
        elif tag is not None and tag != _STR_TAG and tag not in _PLAIN_TAGS:
            problems.append(
                SpecProblem(
                    display,
                    line_of(node, (key,), line),
                    unsupported_tag(tag),
                    address,
                    field_path(here),
                )
            )
            continue
        if isinstance(value, str) and "$" in value:
            written[here] = value
            try:
                node[key] = interpolate(value, environ)
            except InterpolationError as error:
                problems.append(
                    SpecProblem(
                        display, line_of(node, (key,), line), str(error), address, field_path(here)
                    )
                )
        else:
            _interpolate_tree(value, here, environ, display, line, address, problems, written)


def _env_secrets(
    spec: BaseModel, written: dict[Loc, str], environ: Mapping[str, str]
) -> tuple[str, ...]:
    """The values of the variables read by the `env:` mappings of hooks and checks: what a
    spec passes to a program that way may be a credential, so it is masked like one and
    kept from every other child (not a value written in the spec itself, nor one of the
    minimal environment every hook gets anyway, such as PATH)."""
    names = (n for loc in _env_locs(spec, ("spec",)) for n in variable_names(written.get(loc, "")))
    return tuple(
        sorted({environ[n] for n in names if n in environ and not in_minimal_environment(n)})
    )


def _env_locs(value: Any, loc: Loc) -> list[Loc]:
    """Where the values of `env:` mappings sit in a validated model (every kind names the
    variables it passes to a program `env`)."""
    if isinstance(value, BaseModel):
        found = []
        for name in type(value).model_fields:
            item, here = getattr(value, name), (*loc, name)
            if name == "env" and isinstance(item, dict):
                found += [(*here, key) for key in item]
            else:
                found += _env_locs(item, here)
        return found
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _env_locs(item, (*loc, i))]
    return []


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
    if isinstance(value, dict):  # e.g. an escalate step's headers
        return [found for k, item in value.items() for found in _secret_locs(item, (*loc, k))]
    return []


def _explicit_tag(value: Any) -> str | None:
    """The tag written on a value (`!vault x`, `!!str 5`, `!!binary ...`), or None."""
    if isinstance(value, bytes):
        return _YAML_TAGS + "binary"
    if isinstance(value, CommentedSet | set):
        return _YAML_TAGS + "set"
    if isinstance(value, CommentedOrderedMap):
        return _YAML_TAGS + "omap"
    if isinstance(value, TaggedScalar | CommentedMap | CommentedSeq):
        tag = value.tag.value
        return str(tag) if tag else None
    return None


def unsupported_tag(tag: str) -> str:
    """The message for a refused tag, shown as written (`!!binary`) and kept short."""
    shown = "!!" + tag.removeprefix(_YAML_TAGS) if tag.startswith(_YAML_TAGS) else tag
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"unsupported YAML tag {shown}: use plain values, and ${{VAR}} for secrets"


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
