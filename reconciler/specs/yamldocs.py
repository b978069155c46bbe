"""Reading YAML documents with the line of every key, and mapping a field path to a line.

Two readers give the same values (yamltree's Map and Seq): yamlfast, libyaml's parser with
a builder of its events, reads what specs are written in; yamlruamel (ruamel.yaml's round
trip, imported only then) reads the rest and words every syntax error.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from reconciler.specs import yamlfast
from reconciler.specs.yamltree import (
    MAX_ALIAS_BYTES,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    Document,
    Map,
    Seq,
    YamlSyntaxError,
)

__all__ = ["MAX_ALIAS_BYTES", "MAX_ALIAS_NODES", "MAX_DEPTH", "Document", "YamlSyntaxError"]
Loc = tuple[str | int, ...]  # a field's path: `('spec', 'destinations', 0, 'url')`


def read_documents(text: str) -> list[Document]:
    """Every non-empty document in `text`; raises YamlSyntaxError."""
    stray_bom = text.find("\ufeff", 1)
    if stray_bom != -1:  # files joined with `cat`: the BOM would hide inside a key
        raise YamlSyntaxError(
            "a byte order mark (U+FEFF) in the middle of the file: remove it",
            text.count("\n", 0, stray_bom) + 1,
        )
    try:
        return yamlfast.read_documents(text)
    except yamlfast.Unsupported:
        from reconciler.specs import yamlruamel

        return yamlruamel.read_documents(text)


def too_deep(document: Any, fallback: int) -> int | None:
    """The line of the first node nested deeper than MAX_DEPTH, or None (no recursion)."""
    stack: list[tuple[Any, int, int]] = [(document, 0, fallback)]
    while stack:
        node, depth, line = stack.pop()
        if isinstance(node, Map | Seq):
            line = node.line
            if depth >= MAX_DEPTH:
                return line
            values = node.values() if isinstance(node, Map) else node
            stack += [(v, depth + 1, line) for v in values if isinstance(v, Map | Seq)]
    return None


def line_of(node: Any, path: Loc, fallback: int) -> int:
    """The line of the deepest part of `path` that exists in `node` (1-based)."""
    line = fallback
    for part in path:
        if isinstance(node, Map) and _hashable(part) and part in node:
            position = node.lines.get(part)
        elif isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node):
            position = node.lines[part]
        else:
            continue
        if position is not None:  # None: a key brought by a merge key, without a line
            line = position
        node = node[part]
    return line


def field_lines(node: Any, loc: Loc = (), depth: int = 3) -> dict[str, int]:
    """`field.path` -> line of the mappings' keys down to `depth` levels (for later messages)."""
    found: dict[str, int] = {}
    if depth == 0 or not isinstance(node, Map):
        return found
    for key, value in node.items():
        here = (*loc, str(key))
        found[field_path(here)] = node.lines.get(key) or 0  # what line_of gives, directly
        if depth > 1 and isinstance(value, Map):
            found.update(field_lines(value, here, depth - 1))
    return found


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def to_plain(node: Any) -> Any:
    """Convert round-trip nodes to plain dicts, lists and scalars (dates become strings)."""
    kind = type(node)
    if kind is str or kind is int or kind is bool or kind is float or node is None:
        return node  # already plain (what the fast reader builds): the common case first
    if isinstance(node, dict):
        return {str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, datetime | date):
        return node.isoformat()
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_$-]+")


def field_path(loc: Loc) -> str:
    """`('spec', 'destinations', 0, 'url')` -> `spec.destinations[0].url`; a key that is not
    a plain name is quoted (`spec["a b"]`, `spec["\\n"]`), so a message stays one line."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(str(part)):
            text += f"[{json.dumps(str(part))}]"
        else:
            text += f".{part}" if text else str(part)
    return text
