"""The fast YAML reader: libyaml's parser (PyYAML's C extension) and a builder of its
events, for the YAML specs are written in: mappings, sequences, plain and quoted scalars,
anchors and aliases.

It reads values as ruamel.yaml's round trip does (YAML 1.2: `yes`, `on` are strings,
`0o17` is octal, `017` is 17, `1_000` is 1000) and gives up (`Unsupported`) on whatever it
does not read the same way or is an error, for yamlruamel to read or refuse in its own
words: a tag, a directive, a merge key `<<`, a timestamp, a duplicate key or anchor, an
undefined or recursive alias, a key that is not a scalar, nesting past MAX_DEPTH, a
character YAML 1.1 and 1.2 read differently, any syntax error.

Why not PyYAML's own loader: its resolver is YAML 1.1 (`yes` is true) and its constructor
neither keeps lines nor refuses duplicate keys; composing nodes and walking them costs
five times this builder (10,000 terms: CSafeLoader load 2.5 s, compose 2.1 s, events
built here 0.4 s).
"""

from __future__ import annotations

import re
from typing import Any

from yaml import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    YAMLError,
)
from yaml._yaml import CParser

from reconciler.specs.yamltree import MAX_DEPTH, Document, Map, Seq, alias_limit


class Unsupported(Exception):
    """The text holds something this reader leaves to the general one."""


# What ruamel.yaml's reader refuses; the line breaks YAML 1.1 has and 1.2 does not (NEL,
# LS, PS: libyaml would count lines differently); tabs, which ruamel.yaml's scanner
# refuses in places libyaml takes them (inside a plain scalar); a byte order mark past the
# first character.
_NOT_READ_ALIKE = re.compile(
    "[^\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_NULLS = {"~": None, "null": None, "Null": None, "NULL": None}
_NUMBER_START = frozenset("-+0123456789.")
# The YAML 1.2 numbers of ruamel.yaml's resolver (resolver.py), in its order: float first.
_FLOAT = re.compile(
    r"""[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |(?P<inf>[-+]?\.(?:inf|Inf|INF))
    |(?P<nan>\.(?:nan|NaN|NAN))""",
    re.X,
)
_INT = re.compile(
    r"""(?P<bin>[-+]?0b[0-1_]+)
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |(?P<hex>[-+]?0x[0-9a-fA-F_]+)""",
    re.X,
)
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}")


def read_documents(text: str) -> list[Document]:
    """Every non-empty document in `text`; raises Unsupported."""
    if _NOT_READ_ALIKE.search(text, 1 if text[:1] == "\ufeff" else 0):
        raise Unsupported
    parser = CParser(text)
    try:
        return _documents(parser, "&" in text, "$" in text)  # no anchor: no alias to count
    except YAMLError:
        raise Unsupported from None
    finally:
        parser.dispose()


def _documents(parser: CParser, counting: bool, dollar: bool) -> list[Document]:
    get: Any = parser.get_event  # events of many types: their fields are read as they are
    documents: list[Document] = []
    get()  # the stream's start
    while True:
        event = get()
        if type(event) is StreamEndEvent:
            return documents
        if event.version is not None or event.tags:  # %YAML / %TAG directives
            raise Unsupported
        document = _document(get, counting, dollar)
        if document.data is not None:
            documents.append(document)
        get()  # the document's end


def _document(get: Any, counting: bool, dollar: bool) -> Document:
    """One document's data, from its first event to its last (before the end event)."""
    # The open collections: (collection, key awaiting its value, its line, anchor, sizes).
    stack: list[tuple[Any, Any, int, str | None, list[int]]] = []
    anchors: dict[str, tuple[Any, int, tuple[int, int] | None]] = {}  # name: value, line, size
    open_anchors: set[str] = set()
    added = [0, 0]  # nodes and bytes aliases stand for so far
    too_big: tuple[int, str] | None = None
    current: Any = None  # the innermost open collection
    sizes = [0, 0]  # nodes and bytes inside `current`, aliases expanded (when counting)
    key: Any = _NO_KEY
    key_line = 0
    plain = not dollar  # until a key that is not a string or an alias
    while True:
        event = get()
        kind = type(event)
        line = event.start_mark.line + 1
        if kind is ScalarEvent:
            if event.tag is not None:
                raise Unsupported
            text = event.value
            value = _plain(text) if not event.style else text
            size = (1, len(text.encode("utf-8", "replace"))) if counting else None
            if event.anchor is not None:
                if not text and not event.style:
                    raise Unsupported  # `&a: x`: libyaml anchors an empty key, ruamel.yaml not
                _define(anchors, event.anchor, value, line, size)
        elif kind is AliasEvent:
            name = event.anchor
            if name not in anchors or name in open_anchors:
                raise Unsupported  # undefined (an error) or recursive
            value, line, size = anchors[name]
            plain = False
            if counting and too_big is None:
                added[0] += size[0]  # type: ignore[index]
                added[1] += size[1]  # type: ignore[index]
                message = alias_limit(*added)
                if message is not None:
                    too_big = (event.start_mark.line + 1, message)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.tag is not None or len(stack) >= MAX_DEPTH:
                raise Unsupported
            if type(current) is Map and key is _NO_KEY:
                raise Unsupported  # a mapping or a list as a key
            opened = Map(line) if kind is MappingStartEvent else Seq(line)
            stack.append((current, key, key_line, event.anchor, sizes))
            if event.anchor is not None:
                _define(anchors, event.anchor, opened, line, None)
                open_anchors.add(event.anchor)
            current, key, sizes = opened, _NO_KEY, [0, 0]
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            value, line = current, current.line
            size = (sizes[0] + 1, sizes[1])
            current, key, key_line, anchor, sizes = stack.pop()
            if anchor is not None:
                anchors[anchor] = (value, line, size)
                open_anchors.discard(anchor)
        else:
            raise Unsupported
        # `value` (at `line`, of `size`) is complete: a key, a value or an item of `current`.
        if counting:
            sizes[0] += size[0]  # type: ignore[index]
            sizes[1] += size[1]  # type: ignore[index]
        if current is None:
            empty = kind is ScalarEvent and value is None and not event.anchor
            if not empty and type(value) is not Map and type(value) is not Seq:
                raise Unsupported  # a scalar document (refused anyway): read as ruamel.yaml does
            return Document(value, line, too_big, checked=True, plain=plain)
        if type(current) is Seq:
            current.append(value)
            current.lines.append(line)
        elif key is _NO_KEY:
            if kind is AliasEvent or value in current:
                raise Unsupported  # an alias as a key, a duplicate key
            key, key_line = value, line
            plain = plain and type(key) is str
        else:
            current[key] = value
            current.lines[key] = key_line
            key = _NO_KEY


_NO_KEY: Any = object()


_ANCHOR = re.compile(r"[A-Za-z0-9_-]+")  # what both parsers end an anchor's name at


def _define(
    anchors: dict[str, tuple[Any, int, tuple[int, int] | None]],
    name: str,
    value: Any,
    line: int,
    size: tuple[int, int] | None,
) -> None:
    if name in anchors or not _ANCHOR.fullmatch(name):
        raise Unsupported  # an anchor defined twice: refused in the general reader's words
    anchors[name] = (value, line, size)


def _plain(text: str) -> Any:
    """The value of a plain (unquoted) scalar as YAML 1.2 reads it."""
    if not text:
        return None
    first = text[0]
    if first in _NUMBER_START:
        return _number(text)
    if first in "tTfF":
        return _BOOLS.get(text, text)
    if first in "~nN":
        return _NULLS.get(text, text)
    if first in "<=!&*" and text in ("<<", "=", "!", "&", "*"):
        raise Unsupported  # merge key, `=`, YAML's own tags: the general reader's business
    return text


def _number(text: str) -> Any:
    """A plain scalar starting like a number: a float, an int, or a string."""
    try:
        return _parsed_number(text)
    except ValueError:  # `._`, `0b_`: left to the general reader
        raise Unsupported from None


def _parsed_number(text: str) -> Any:
    floating = _FLOAT.fullmatch(text)
    if floating is not None:
        if floating["inf"]:
            return float("-inf") if text[0] == "-" else float("inf")
        if floating["nan"]:
            return float("nan")
        return float(text.replace("_", ""))
    integer = _INT.fullmatch(text)
    if integer is not None:
        digits = text.replace("_", "")
        sign, digits = (-1, digits[1:]) if digits[:1] == "-" else (1, digits.lstrip("+"))
        if integer["bin"]:
            return sign * int(digits[2:], 2)
        if integer["hex"]:
            return sign * int(digits[2:], 16)
        if digits[:2] == "0o":
            return sign * int(digits[2:], 8)
        return sign * int(digits)
    if _TIMESTAMP.match(text):
        raise Unsupported  # maybe a timestamp: read as ruamel.yaml reads it
    return text
