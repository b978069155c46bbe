"""Which fields of a spec model can hold a credential (SecretStr) or an `env:` mapping, read
from the annotations once per model class: the walks over a validated spec that look for
them skip every other field (a taxonomy's 100,000 terms hold neither)."""

from __future__ import annotations

import functools
import typing
from typing import Any, Literal

from pydantic import BaseModel, SecretStr

Wanted = Literal["secret", "env"]


@functools.cache
def fields_holding(model: type[BaseModel], wanted: Wanted) -> tuple[str, ...]:
    """The names of `model`'s fields (in their order) whose values may hold what is wanted:
    a SecretStr, or a field named `env`, here or in a model inside."""
    _IN_PROGRESS.add((model, wanted))
    try:
        return tuple(
            name
            for name, info in model.model_fields.items()
            if (wanted == "env" and name == "env") or _may_hold(info.annotation, wanted)
        )
    finally:
        _IN_PROGRESS.discard((model, wanted))


_IN_PROGRESS: set[tuple[type[BaseModel], Wanted]] = set()


def _may_hold(annotation: Any, wanted: Wanted) -> bool:
    if typing.get_origin(annotation) is Literal:
        return False  # its arguments are values, not types
    if annotation is Any or annotation is object or isinstance(annotation, str | typing.TypeVar):
        return True  # unknown: walked, as every field was before
    if isinstance(annotation, type):
        if issubclass(annotation, SecretStr):
            return wanted == "secret"
        if issubclass(annotation, BaseModel):
            if (annotation, wanted) in _IN_PROGRESS:
                return True  # a model inside itself: walked
            return bool(fields_holding(annotation, wanted))
    return any(_may_hold(argument, wanted) for argument in typing.get_args(annotation))
