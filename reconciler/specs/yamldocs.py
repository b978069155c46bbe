"""Reading YAML documents with the line of every key, and mapping a field path to a line."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError, YAMLWarning
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

MAX_DEPTH = 100  # deeper documents are refused before recursion (parser, pydantic) gives out
# What aliases (`*name`) may add to a document beyond what is written, each alias counting
# its anchor's whole value (nested aliases expanded): nodes (keys, values, items) and bytes
# of scalar text. Enough for any real reuse; far below a "billion laughs" or a big string
# repeated, which would take minutes and gigabytes to validate. What is written is not
# counted: a large spec without aliases is not limited.
MAX_ALIAS_NODES = 100_000
MAX_ALIAS_BYTES = 10_000_000
Loc = tuple[str | int, ...]  # a field's path: `('spec', 'destinations', 0, 'url')`


class Document(NamedTuple):
    """One YAML document: its data, its first line, and (line, message) when its aliases
    expand beyond the limits (the data is then not to be used beyond its `Kind/name`)."""

    data: Any
    line: int
    too_big: tuple[int, str] | None


class YamlSyntaxError(ValueError):
    """The text is not YAML; `line` is where the parser gave up (1-based, if known)."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def read_documents(text: str) -> list[Document]:
    """Every non-empty document in `text`; raises YamlSyntaxError."""
    stray_bom = text.find("\ufeff", 1)
    if stray_bom != -1:  # files joined with `cat`: the BOM would hide inside a key
        raise YamlSyntaxError(
            "a byte order mark (U+FEFF) in the middle of the file: remove it",
            text.count("\n", 0, stray_bom) + 1,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", YAMLWarning)  # nothing for the user to act on
            warnings.simplefilter("error", ReusedAnchorWarning)  # `&a` twice: which one is meant?
            return list(_documents(text))
    except (YAMLError, ReusedAnchorWarning, RecursionError, TypeError) as error:
        raise _syntax_error(error, text) from None


def _syntax_error(error: Exception, text: str) -> YamlSyntaxError:
    """What the parser's error means, in one line, with the line it is about."""
    if isinstance(error, MarkedYAMLError):
        return YamlSyntaxError(_syntax_message(error), _syntax_line(error, text))
    if isinstance(error, ReusedAnchorWarning):
        anchor, line = _reused_anchor(str(error))
        return YamlSyntaxError(
            f"invalid YAML: anchor &{anchor} is defined twice; give each anchor its own name",
            line,
        )
    if isinstance(error, ReaderError):
        return YamlSyntaxError(
            f"invalid YAML: control character {_codepoint(error.character)} is not allowed",
            text.count("\n", 0, max(0, int(error.position))) + 1,
        )
    if isinstance(error, RecursionError):
        message = f"invalid YAML: nested deeper than {MAX_DEPTH} levels"
        return YamlSyntaxError(message, _deep_flow_line(text))
    if isinstance(error, TypeError):  # ruamel cannot build a key like `? [{a: 1}]` (unhashable)
        message = "invalid YAML: a mapping key may not be a list or a mapping"
        return YamlSyntaxError(message, _complex_key_line(text))
    first = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
    return YamlSyntaxError(f"invalid YAML: {first}", None)


def _documents(text: str) -> Iterator[Document]:
    yaml = YAML(typ="rt")  # round-trip nodes remember the line of every key and item
    yaml.Composer = _CountingComposer
    for index, document in enumerate(yaml.load_all(text)):
        if document is None:
            continue
        too_big = yaml.composer.too_big
        if isinstance(document, CommentedMap | CommentedSeq):
            yield Document(document, _node_line(document, 1), too_big)
        else:  # a bare scalar remembers no line: ask the composer (rare, and an error anyway)
            yield Document(document, _scalar_line(text, index), too_big)


class _CountingComposer(Composer):
    """A composer that counts what aliases stand for as it meets them, so a document whose
    aliases expand too far is known (at the alias that crossed the limit) before anything
    walks it. Composing itself shares the anchored node: it does not expand anything."""

    too_big: tuple[int, str] | None = None

    def compose_document(self) -> Any:
        self.too_big = None
        self._added = [0, 0]  # nodes, bytes that aliases stand for so far
        self._sizes: dict[int, tuple[int, int]] = {}  # complete node -> its expanded size
        self._complete: set[int] = set()
        return super().compose_document()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        node = super().compose_node(parent, index)
        if isinstance(event, AliasEvent):
            if self.too_big is None:
                self._count(node, int(event.start_mark.line) + 1)
        else:
            self._complete.add(id(node))  # composed to its end: its size will not change
        return node

    def _count(self, node: Node, line: int) -> None:
        nodes, size = _expanded(node, self._sizes, self._complete)
        self._added[0] += nodes
        self._added[1] += size
        if self._added[0] > MAX_ALIAS_NODES:
            self.too_big = (line, f"aliases (*name) repeat more than {MAX_ALIAS_NODES} values")
        elif self._added[1] > MAX_ALIAS_BYTES:
            self.too_big = (line, f"aliases (*name) repeat more than {MAX_ALIAS_BYTES} bytes")


def _expanded(root: Node, sizes: dict[int, tuple[int, int]], complete: set[int]) -> tuple[int, int]:
    """(nodes, bytes of scalar text) that `root` stands for with its aliases expanded; each
    complete node is measured once. A node still being composed (a recursive alias) counts
    what it holds so far, and a cycle is not followed."""
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            found = (1, _text_bytes(node))
            for child in _node_children(node):
                nodes, size = sizes.get(id(child), (0, 0))  # (0, 0): a cycle, counted once
                found = (found[0] + nodes, found[1] + size)
            sizes[key] = found
            continue
        if key in on_path or (key in sizes and key in complete):
            continue
        on_path.add(key)
        stack.append((node, True))
        stack += [(c, False) for c in _node_children(node) if id(c) not in on_path]
    found = sizes[id(root)]
    for key in [k for k in sizes if k not in complete]:  # measured while still growing
        del sizes[key]
    return found


def _node_children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _text_bytes(node: Node) -> int:
    return len(node.value.encode("utf-8", "replace")) if isinstance(node, ScalarNode) else 0


_REUSED_ANCHOR = re.compile(
    r"duplicate anchor '(?P<anchor>[^']*)'.*second occurrence.*?line (?P<line>\d+)", re.DOTALL
)


def _reused_anchor(message: str) -> tuple[str, int | None]:
    """The anchor and the 1-based line of its second definition, from ruamel's warning."""
    found = _REUSED_ANCHOR.search(message)
    if found is None:
        return "?", None
    return found["anchor"], int(found["line"])


def _complex_key_line(text: str) -> int:
    """The line of the first mapping key that is not a scalar (the file composes: only
    building its values failed)."""
    stack: list[Node] = [n for n in YAML(typ="rt").compose_all(text) if n is not None]
    while stack:
        node = stack.pop(0)
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not isinstance(key, ScalarNode):
                    return int(key.start_mark.line) + 1
                stack.append(value)
        elif isinstance(node, SequenceNode):
            stack += node.value
    return 1


def _codepoint(character: Any) -> str:
    if isinstance(character, str) and len(character) == 1:
        character = ord(character)
    return f"U+{character:04X}" if isinstance(character, int) else repr(character)


def _node_line(node: Any, fallback: int) -> int:
    """The 1-based line of a round-trip mapping or sequence (fallback when it has none)."""
    line = getattr(getattr(node, "lc", None), "line", None)
    return int(line) + 1 if isinstance(line, int) else fallback


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
            line = _node_line(node, line)
            if depth >= MAX_DEPTH:
                return line
            values = node.values() if isinstance(node, CommentedMap) else node
            stack += [(value, depth + 1, line) for value in values]
    return None


def line_of(node: Any, path: Loc, fallback: int) -> int:
    """The line of the deepest part of `path` that exists in `node` (1-based)."""
    line = fallback
    for part in path:
        if isinstance(node, CommentedMap) and _hashable(part) and part in node:
            position = node.lc.key(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            position = node.lc.item(part)
        else:
            continue
        if position is not None:  # None: a node built by an unknown tag, without lines
            line = int(position[0]) + 1
        node = node[part]
    return line


def field_lines(node: Any, loc: Loc = (), depth: int = 3) -> dict[str, int]:
    """`field.path` -> line of the mappings' keys down to `depth` levels (for later messages)."""
    found: dict[str, int] = {}
    if depth == 0 or not isinstance(node, CommentedMap):
        return found
    for key in node:
        here = (*loc, str(key))
        found[field_path(here)] = line_of(node, (key,), 0)
        found.update(field_lines(node[key], here, depth - 1))
    return found


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


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
