"""`${VAR}` and `${VAR:-default}` in string values, read from the environment at run time."""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


class MissingVariable(ValueError):
    """A `${VAR}` without default names a variable that is not set."""


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Expand variables in `text`; `$$` is a literal `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match["name"], match["default"]
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise MissingVariable(f"environment variable {name} is not set (use ${{{name}:-default}})")

    return _VARIABLE.sub(replace, text)
