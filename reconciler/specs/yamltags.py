"""YAML tags in spec documents: `!!str`, `!!map` and `!!seq` mean plain values; any other
tag (`!vault x`, `!!binary ...`, `!!set`) is refused, so no value means more than it shows."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from reconciler.specs.yamltree import Map, Seq, Tagged

_YAML_TAGS = "tag:yaml.org,2002:"
_STR_TAG = _YAML_TAGS + "str"
_PLAIN_TAGS = (_YAML_TAGS + "map", _YAML_TAGS + "seq")  # `!!map {}`: a mapping, like any other


class UnsupportedTag(ValueError):
    """A value carries a tag that is refused; the message names the tag as written."""


def root_tag_refusal(document: Any) -> str | None:
    """The message refusing the tag written on a whole document, or None: only `!!map` and
    `!!seq` may stand there."""
    tag = _explicit_tag(document)
    return _unsupported_tag(tag) if tag is not None and tag not in _PLAIN_TAGS else None


def plain_value(key: Any, value: Any) -> Any:
    """The value of `key` in a mapping or sequence as a plain value: `!!str 1.0` is the
    string `1.0`. Raises UnsupportedTag for a refused tag on the value or on its key
    (`!vault password: x`)."""
    tag = _explicit_tag(value)
    if tag is None and isinstance(key, Tagged):
        tag = _explicit_tag(key)
    if tag == _STR_TAG and isinstance(value, Tagged):
        return value.value
    if tag is not None and tag != _STR_TAG and tag not in _PLAIN_TAGS:
        raise UnsupportedTag(_unsupported_tag(tag))
    return value


def _explicit_tag(value: Any) -> str | None:
    """The tag written on a value (`!vault x`, `!!str 5`, `!!binary ...`), or None."""
    if isinstance(value, bytes):
        return _YAML_TAGS + "binary"
    if isinstance(value, AbstractSet):
        return _YAML_TAGS + "set"
    if isinstance(value, Map | Seq | Tagged):
        return value.tag or None
    return None


def _unsupported_tag(tag: str) -> str:
    """The message for a refused tag, shown as written (`!!binary`) and kept short."""
    shown = "!!" + tag.removeprefix(_YAML_TAGS) if tag.startswith(_YAML_TAGS) else tag
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"unsupported YAML tag {shown}: use plain values, and ${{VAR}} for secrets"
