"""What reading a spec's YAML gives: documents of dicts and lists that remember their
lines, the limits on what aliases add, and the syntax error.

Both readers (yamlfast for the common case, yamlruamel for everything else) build these,
so what comes after reading (tags, `${VAR}`, validation, messages) sees one shape.
"""

from __future__ import annotations

from typing import Any, NamedTuple

MAX_DEPTH = 100  # deeper documents are refused before recursion (parser, pydantic) gives out
# What aliases (`*name`) may add to a document beyond what is written, each alias counting
# its anchor's whole value (nested aliases expanded): nodes (keys, values, items) and bytes
# of scalar text. Enough for any real reuse; far below a "billion laughs" or a big string
# repeated, which would take minutes and gigabytes to validate. What is written is not
# counted: a large spec without aliases is not limited.
MAX_ALIAS_NODES = 100_000
MAX_ALIAS_BYTES = 10_000_000


class Document(NamedTuple):
    """One YAML document: its data, its first line, and (line, message) when its aliases
    expand beyond the limits (the data is then not to be used beyond its `Kind/name`).
    What the fast reader knows saves walks over a big document: `checked`, no tag and no
    nesting past MAX_DEPTH; `plain`, moreover every key a string, no alias and no `$` in
    the text (the data is plain JSON-like values, with nothing to expand)."""

    data: Any
    line: int
    too_big: tuple[int, str] | None
    checked: bool = False
    plain: bool = False


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` is where the parser gave up (1-based, if known)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def alias_limit(nodes: int, size: int) -> str | None:
    """The message when aliases that added `nodes` nodes and `size` bytes went too far."""
    if nodes > MAX_ALIAS_NODES:
        return f"aliases (*name) repeat more than {MAX_ALIAS_NODES} values"
    if size > MAX_ALIAS_BYTES:
        return f"aliases (*name) repeat more than {MAX_ALIAS_BYTES} bytes"
    return None


class Map(dict[Any, Any]):
    """A YAML mapping: its 1-based `line`, the line of each key (`lines`; None for a key
    that has no line of its own, as one brought by a merge key `<<`) and the tag written on
    it (`tag`, None when none)."""

    __slots__ = ("line", "lines", "tag")

    def __init__(self, line: int, tag: str | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int | None] = {}
        self.tag = tag


class Seq(list[Any]):
    """A YAML sequence: its 1-based `line`, the line of each item (`lines`) and its tag."""

    __slots__ = ("line", "lines", "tag")

    def __init__(self, line: int, tag: str | None = None) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int | None] = []
        self.tag = tag


class Tagged:
    """A scalar with a tag the reader does not turn into a value (`!vault x`, `!!str 1.0`):
    the text as written and the tag, for yamltags to apply or refuse. Hashed by identity,
    as the parser's own tagged scalars are (two such keys are two keys)."""

    __slots__ = ("tag", "text", "value")

    def __init__(self, value: str, tag: str, text: str) -> None:
        self.value = value
        self.tag = tag
        self.text = text  # str() of the parser's object: what a key shows in messages

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Tagged({self.value!r}, tag={self.tag!r})"
