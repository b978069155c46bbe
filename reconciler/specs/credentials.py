"""The credentials of a validated spec: each is read from the environment as one `${VAR}`,
and the variables `env:` mappings pass to programs are kept secret like them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from reconciler.redaction import in_minimal_environment
from reconciler.specs.documents import SpecDocument
from reconciler.specs.interpolation import single_variable, variable_names
from reconciler.specs.modelfields import fields_holding
from reconciler.specs.yamldocs import Loc

_WRITE_AS_VARIABLE = (
    "a credential is read from the environment: write it as ${VAR} "
    "(no default, no other text, one variable)"
)


def check_credentials(document: SpecDocument, spec: BaseModel) -> None:
    """Report each SecretStr field of `spec` not written as exactly one `${VAR}`."""
    for loc in _secret_locs(spec, ("spec",)):
        if not single_variable(document.written.get(loc, "")):
            document.report(document.line_at(loc), _WRITE_AS_VARIABLE, loc)


def env_secrets(document: SpecDocument, spec: BaseModel) -> tuple[str, ...]:
    """The values of the variables read by the `env:` mappings of hooks and checks: what a
    spec passes to a program that way may be a credential, so it is masked like one and
    kept from every other child (not a value written in the spec itself, nor one of the
    minimal environment every hook gets anyway, such as PATH)."""
    written, environ = document.written, document.environ
    names = (n for loc in _env_locs(spec, ("spec",)) for n in variable_names(written.get(loc, "")))
    return tuple(
        sorted({environ[n] for n in names if n in environ and not in_minimal_environment(n)})
    )


def _env_locs(value: Any, loc: Loc) -> list[Loc]:
    """Where the values of `env:` mappings sit in a validated model (every kind names the
    variables it passes to a program `env`)."""
    if isinstance(value, BaseModel):
        found = []
        for name in fields_holding(type(value), "env"):
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
            for name in fields_holding(type(value), "secret")
            for found in _secret_locs(getattr(value, name), (*loc, name))
        ]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in _secret_locs(item, (*loc, i))]
    if isinstance(value, dict):  # e.g. an escalate step's headers
        return [found for k, item in value.items() for found in _secret_locs(item, (*loc, k))]
    return []
