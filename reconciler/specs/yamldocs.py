"""Reading YAML documents with the line of every key, and mapping a field path to a line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

MAX_DEPTH = 100  # deeper documents are refused before recursion (parser, pydantic) gives out


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` is where the parser gave up (1-based, if known)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_documents(text: str) -> Iterator[tuple[Any, int]]:
    """Yield (document, first line) for every non-empty document in `text`."""
    yaml = YAML(typ="rt")  # round-trip nodes remember the line of every key and item
    try:
        for index, document in enumerate(yaml.load_all(text)):
            if document is None:
                continue
            if isinstance(document, CommentedMap | CommentedSeq):
                yield document, int(document.lc.line) + 1
            else:  # a bare scalar remembers no line: ask the composer (rare, and an error anyway)
                yield document, _scalar_line(text, index)
    except MarkedYAMLError as error:
        raise YamlSyntaxError(_syntax_message(error), _syntax_line(error, text)) from None
    except RecursionError:
        raise YamlSyntaxError(
            f"invalid YAML: nested deeper than {MAX_DEPTH} levels", _deep_flow_line(text)
        ) from None
    except YAMLError as error:
        raise YamlSyntaxError(f"invalid YAML: {error}", None) from None


def _scalar_line(text: str, index: int) -> int:
    for number, node in enumerate(YAML(typ="rt").compose_all(text)):
        if number == index and node is not None:
            return int(node.start_mark.line) + 1
    return 1


_DUPLICATE_KEY = re.compile(r'^found duplicate key "(?P<key>.*?)" with value')


def _syntax_message(error: MarkedYAMLError) -> str:
    """The parser's problem in one line; values are left out (they may be long or secret)."""
    problem = str(error.problem or error.context or "invalid YAML").strip()
    duplicate = _DUPLICATE_KEY.match(problem)
    if duplicate:
        return f"invalid YAML: duplicate key {duplicate['key']!r} in a mapping"
    context, mark = error.context, error.context_mark
    if context and error.problem and mark is not None and mark is not error.problem_mark:
        problem += f" ({context} started at line {mark.line + 1})"
    return f"invalid YAML: {problem}"


def _syntax_line(error: MarkedYAMLError, text: str) -> int | None:
    """Where the parser gave up; at the end of the text, where the unclosed construct began."""
    problem_mark, context_mark = error.problem_mark, error.context_mark
    mark = problem_mark or context_mark
    if mark is None:
        return None
    at_end = "end of stream" in str(error.problem) or "<stream end>" in str(error.problem)
    if at_end and context_mark is not None:
        mark = context_mark
    last_line = max(1, len(text.splitlines()))
    return min(int(mark.line) + 1, last_line)


def _deep_flow_line(text: str) -> int | None:
    """The line where `[`/`{` nesting first exceeds MAX_DEPTH (a guess; quotes are ignored)."""
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        for char in line:
            depth += (char in "[{") - (char in "]}")
            if depth > MAX_DEPTH:
                return number
    return None


def too_deep(document: Any, fallback: int) -> int | None:
    """The line of the first node nested deeper than MAX_DEPTH, or None (no recursion)."""
    stack: list[tuple[Any, int, int]] = [(document, 0, fallback)]
    while stack:
        node, depth, line = stack.pop()
        if isinstance(node, CommentedMap | CommentedSeq):
            line = int(node.lc.line) + 1
            if depth >= MAX_DEPTH:
                return line
            values = node.values() if isinstance(node, CommentedMap) else node
            stack += [(value, depth + 1, line) for value in values]
    return None


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
