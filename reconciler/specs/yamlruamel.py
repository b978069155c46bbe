"""The general YAML reader: ruamel.yaml's round trip, for what the fast reader leaves to
it (tags, merge keys, directives, timestamps, anything it cannot read) and for the wording
of every syntax error. Its nodes are converted to yamltree's Map, Seq and Tagged."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedOrderedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError, YAMLWarning
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from reconciler.specs.yamltree import (
    MAX_DEPTH,
    Document,
    Map,
    Seq,
    Tagged,
    YamlSyntaxError,
    alias_limit,
)

_OMAP_TAG = "tag:yaml.org,2002:omap"


def read_documents(text: str) -> list[Document]:
    """Every non-empty document in `text`; raises YamlSyntaxError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", YAMLWarning)  # nothing for the user to act on
            warnings.simplefilter("error", ReusedAnchorWarning)  # `&a` twice: which one is meant?
            return list(_documents(text))
    except (YAMLError, ReusedAnchorWarning, RecursionError, TypeError) as error:
        raise _syntax_error(error, text) from None


def _documents(text: str) -> Iterator[Document]:
    yaml = YAML(typ="rt")  # round-trip nodes remember the line of every key and item
    yaml.Composer = _CountingComposer
    for index, document in enumerate(yaml.load_all(text)):
        if document is None:
            continue
        too_big = yaml.composer.too_big
        if isinstance(document, CommentedMap | CommentedSeq):
            yield Document(_converted(document, {}), _node_line(document, 1), too_big)
        else:  # a bare scalar remembers no line: ask the composer (rare, and an error anyway)
            yield Document(_converted(document, {}), _scalar_line(text, index), too_big)


def _converted(value: Any, done: dict[int, Any]) -> Any:
    """A round-trip value as Map / Seq / Tagged (scalars as they are); a value reached twice
    (an alias) is converted once, so sharing and cycles stay as the parser made them."""
    if id(value) in done:
        return done[id(value)]
    if isinstance(value, CommentedMap):
        tag = _OMAP_TAG if isinstance(value, CommentedOrderedMap) else value.tag.value
        mapping = done[id(value)] = Map(_node_line(value, 1), str(tag) if tag else None)
        positions = value.lc.data or {}  # none: built by a tag, without lines
        for key, item in value.items():
            converted_key = _converted(key, done)
            mapping[converted_key] = _converted(item, done)
            position = positions.get(key)  # none for a key a merge key `<<` brought
            mapping.lines[converted_key] = int(position[0]) + 1 if position else None
        return mapping
    if isinstance(value, CommentedSeq):
        tag = value.tag.value
        sequence = done[id(value)] = Seq(_node_line(value, 1), str(tag) if tag else None)
        positions = value.lc.data or {}  # none: built by a tag, without lines
        for index, item in enumerate(value):
            sequence.append(_converted(item, done))
            position = positions.get(index)
            sequence.lines.append(int(position[0]) + 1 if position else None)
        return sequence
    if isinstance(value, TaggedScalar):
        tag = value.tag.value
        done[id(value)] = Tagged(str(value.value), str(tag), str(value))
        return done[id(value)]
    return value  # a scalar, bytes (`!!binary`), a set (`!!set`): yamltags refuses the last two


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
        message = alias_limit(*self._added)
        if message is not None:
            self.too_big = (line, message)


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
