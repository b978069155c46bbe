"""`${VAR}` and `${VAR:-default}` in string values, read from the environment at run time."""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(
    r"\$\$"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}"
    r"|(?P<malformed>\$\{[^}]{0,40}\}?)"
)


class InterpolationError(ValueError):
    """A string's `${...}` cannot be expanded."""


class MissingVariable(InterpolationError):
    """A `${VAR}` without default names a variable that is not set."""


class MalformedVariable(InterpolationError):
    """A `${` that is not `${NAME}` or `${NAME:-default}` (unclosed, or a bad name)."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Expand variables in `text`; `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match["malformed"] is not None:
            raise MalformedVariable(
                f"malformed variable reference {match['malformed']!r}: use ${{NAME}} or "
                "${NAME:-default}, and $$ for a literal $"
            )
        name, default = match["name"], match["default"]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariable(f"environment variable {name} is not set (use ${{{name}:-default}})")

    return _VARIABLE.sub(replace, text)


def single_variable(text: str) -> bool:
    """Whether `text` is exactly one `${NAME}` (an empty default allowed): no character of
    it is written in the spec itself, and its value is one variable's, as a credential's
    must be (`${A}${B}` would split a secret over variables nothing treats as secret)."""
    match = _VARIABLE.fullmatch(text)
    return match is not None and match["name"] is not None and not match["default"]


def variable_names(text: str) -> list[str]:
    """The names of the well-formed `${NAME}` references in `text`."""
    return [m["name"] for m in _VARIABLE.finditer(text) if m["name"] is not None]
