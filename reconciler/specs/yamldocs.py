"""Reading YAML documents with the line of every key, and mapping a field path to a line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` is where the parser gave up (1-based, if known)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_documents(text: str) -> Iterator[tuple[Any, int]]:
    """Yield (document, first line) for every non-empty document in `text`."""
    yaml = YAML(typ="rt")  # round-trip nodes remember the line of every key and item
    try:
        for document in yaml.load_all(text):
            if document is None:
                continue
            yield document, _first_line(document)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        raise YamlSyntaxError(f"invalid YAML: {problem}".strip(), line) from None
    except YAMLError as error:
        raise YamlSyntaxError(f"invalid YAML: {error}", None) from None


def _first_line(node: Any) -> int:
    if isinstance(node, CommentedMap | CommentedSeq):
        return int(node.lc.line) + 1
    return 1


def line_of(node: Any, path: tuple[str | int, ...], fallback: int) -> int:
    """The line of the deepest part of `path` that exists in `node` (1-based)."""
    line = fallback
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            line = int(node.lc.key(part)[0]) + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = int(node.lc.item(part)[0]) + 1
            node = node[part]
    return line


def to_plain(node: Any) -> Any:
    """Convert round-trip nodes to plain dicts, lists and scalars (dates become strings)."""
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


def field_path(loc: tuple[str | int, ...]) -> str:
    """`('spec', 'destinations', 0, 'url')` -> `spec.destinations[0].url`."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
