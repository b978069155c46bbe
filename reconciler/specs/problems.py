"""Pydantic's validation errors as spec problems: `file:line: Kind/name: field: message`,
the field and its line as written in the YAML, the message in the specs' own words."""

from __future__ import annotations

import typing
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from reconciler.specs.documents import SpecDocument
from reconciler.specs.types import FieldError
from reconciler.specs.yamldocs import Loc, line_of, to_plain

M = TypeVar("M", bound=BaseModel)


def validate(
    document: SpecDocument,
    model: type[M],
    prefix: Loc = (),
    context: dict[str, Any] | None = None,
) -> M | None:
    """The value at `prefix` in the document validated by `model`; None when it is
    invalid, each error then reported as a problem at its field's line."""
    node = document.data
    for part in prefix:
        node = node[part]
    try:
        value = node if document.plain else to_plain(node)  # plain: no copy needed
        return model.model_validate(value, context=context)
    except ValidationError as error:
        fallback = document.line_at(prefix)  # a missing field: the line of its mapping
        for detail in error.errors(include_url=False):
            raw: Loc = tuple(detail["loc"]) + _inner_loc(detail)
            loc = _written_loc(node, raw)
            message = _message(detail, model, raw)
            document.report(line_of(node, loc, fallback), message, prefix + loc)
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
