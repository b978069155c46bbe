"""One spec document being loaded: where it is written, the problems found in it, and the
`${VAR}` its strings read from the environment."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.errors import SpecProblem
from reconciler.specs.interpolation import InterpolationError, interpolate, variable_names
from reconciler.specs.yamldocs import Loc, field_path, line_of
from reconciler.specs.yamltags import UnsupportedTag, plain_value
from reconciler.specs.yamltree import Map, Seq, Tagged

_UNTAGGED = frozenset({str, int, float, bool, type(None)})  # what the readers build untagged
_HINT = re.compile(r"[^\s/\x00-\x1f\x7f-\x9f\u2028\u2029]{1,100}")


@dataclasses.dataclass
class SpecDocument:
    """One YAML document being loaded: its data, where it is written (file, first line and,
    for messages, its `Kind/name`), the problems found in it so far, and the environment
    its `${VAR}` read, with each value that has a `$` as it was written (`written`)."""

    data: Any
    file: str
    line: int
    base_dir: Path
    environ: Mapping[str, str]
    checked: bool = False  # as yamltree.Document's: no tag, nesting within the limit
    plain: bool = False  # and plain values with nothing to expand: walks are skipped
    address: str | None = dataclasses.field(init=False)
    problems: list[SpecProblem] = dataclasses.field(default_factory=list)
    written: dict[Loc, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.address = _address_hint(self.data)

    def report(self, line: int, message: str, loc: Loc = ()) -> None:
        """Add a problem at `line` about the field at `loc` (the whole document: `()`)."""
        field = field_path(loc) or None
        self.problems.append(SpecProblem(self.file, line, message, self.address, field))

    def line_at(self, loc: Loc) -> int:
        """The line of the deepest part of `loc` written in the document."""
        return line_of(self.data, loc, self.line)

    def expand(self) -> set[str]:
        """Expand `${VAR}` in every string value, in place (keys are left alone), and apply
        the values' tags; returns the fields reported as not expandable or wrongly tagged."""
        if self.plain:
            return set()
        before = len(self.problems)
        self._expand(self.data, ())
        return {p.field for p in self.problems[before:] if p.field}

    def _expand(self, node: Any, loc: Loc) -> None:
        for key, value in _children(node):
            kind = type(value)
            if (
                kind in _UNTAGGED
                and type(key) is not Tagged
                and (kind is not str or "$" not in value)
            ):
                continue  # the common case, nothing to do: no tag, no `${VAR}`, nothing inside
            here = (*loc, key)
            try:
                expanded = self._expanded(node, key, value, here)
            except (UnsupportedTag, InterpolationError) as error:
                self.report(line_of(node, (key,), self.line), str(error), here)
            else:
                self._expand(expanded, here)

    def _expanded(self, node: Any, key: Any, value: Any, here: Loc) -> Any:
        """`node[key]` made plain and expanded, in place (a failed expansion leaves it as
        written, its tag applied)."""
        plain = plain_value(key, value)
        if plain is not value:
            node[key] = plain
        if isinstance(plain, str) and "$" in plain:
            self.written[here] = plain
            plain = node[key] = interpolate(plain, self.environ)
        return plain

    def variable_values(self) -> set[str]:
        """The values of the variables the document's strings read (asked before they are
        expanded): any may be a credential, so no message shows them (as for the
        Redactor, 3+ chars)."""
        found: set[str] = set()
        stack = [] if self.plain else [self.data]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                stack += node.values()
            elif isinstance(node, list):
                stack += node
            elif isinstance(node, str) and "${" in node:
                values = (self.environ.get(name) for name in variable_names(node))
                found.update(v for v in values if v is not None and len(v) >= 3)
        return found

    def mask(self, values: set[str]) -> None:
        """Show each of `values` as `***` in the problems found so far."""
        self.problems[:] = [_masked(p, values) for p in self.problems]


def _children(node: Any) -> list[tuple[Any, Any]]:
    """(key, value) of a mapping, (index, item) of a sequence; nothing for a scalar."""
    if isinstance(node, Map):
        return list(node.items())
    if isinstance(node, Seq):
        return list(enumerate(node))
    return []


def _masked(problem: SpecProblem, hidden: set[str]) -> SpecProblem:
    message = problem.message
    for value in sorted(hidden, key=len, reverse=True):
        message = message.replace(value, "***")
    return dataclasses.replace(problem, message=message) if message != problem.message else problem


def _address_hint(document: Any) -> str | None:
    """`Kind/name` as written, for messages; left out when either part is not one short
    printable word (it could span lines or pretend to be another message)."""
    if not isinstance(document, Map):
        return None
    kind, metadata = document.get("kind"), document.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if isinstance(kind, str) and isinstance(name, str) and _HINT.fullmatch(kind + name):
        return f"{kind}/{name}"
    return None
