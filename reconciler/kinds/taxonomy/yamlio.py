"""YAML target files: a fast writer for the one shape reconciler writes, and a reader that
takes a fast path for that shape and falls back to ruamel.yaml for anything else.

ruamel.yaml without its C extension needs over a minute for a 100,000-term file; the
documents are a fixed shape (a mapping, a list of flat mappings, lists of strings), so
writing them by hand is simple and deterministic. Strings are plain when YAML cannot read
them as anything else, and JSON-quoted (a subset of YAML's double quotes) otherwise.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.kinds.taxonomy.terms import Taxonomy

# Plain scalars YAML 1.1 and 1.2 both read back as the same string.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ ./()&+'-]*")
_RESERVED = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])
# Characters YAML does not allow unescaped inside double quotes, or folds as line breaks
# (JSON leaves them raw).
_UNPRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]")
_TOP = re.compile(r"^(?P<key>taxonomy|terms):(?: (?P<value>.*))?$")
_ITEM = re.compile(r"^  (?P<dash>- |  )(?P<key>[A-Za-z]+):(?: (?P<value>.*))?$")
_LIST_ITEM = re.compile(r"^      - (?P<value>.*)$")


class YamlError(ValueError):
    """The text is not YAML (the message names the line when the parser knows it)."""


def scalar(value: Any) -> str:
    """One scalar as YAML."""
    if value is True or value is False:
        return "true" if value else "false"
    text = str(value)
    if _PLAIN.fullmatch(text) and not text.endswith(" ") and text.lower() not in _RESERVED:
        return text
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", quoted)


def dump(name: str, terms: list[dict[str, Any]]) -> str:
    """The YAML text of a taxonomy document (terms already in document form)."""
    lines = [f"taxonomy: {scalar(name)}", "terms:" if terms else "terms: []"]
    for term in terms:
        dash = "  - "
        for key in sorted(term):
            value = term[key]
            if isinstance(value, list):
                lines.append(f"{dash}{key}:")
                lines += [f"      - {scalar(item)}" for item in value]
            else:
                lines.append(f"{dash}{key}: {scalar(value)}")
            dash = "    "
    return "\n".join(lines) + "\n"


def dump_terms(name: str, terms: Taxonomy) -> str:
    """`dump(name, document(name, terms)["terms"])`, written from the terms directly (the
    keys of a term in sorted order, empty fields left out), without building the document;
    each id is quoted once, also where other terms refer to it."""
    lines = [f"taxonomy: {scalar(name)}", "terms:" if terms else "terms: []"]
    add = lines.append
    ids = {term_id: scalar(term_id) for term_id in terms}

    def ref(term_id: str) -> str:
        return ids.get(term_id) or scalar(term_id)

    for term_id in sorted(terms):
        term = terms[term_id]
        dash = "  - "
        if term.aliases:
            add(f"{dash}aliases:")
            lines += [f"      - {scalar(item)}" for item in sorted(term.aliases)]
            dash = "    "
        if term.deprecated:
            add(f"{dash}deprecated: true")
            dash = "    "
        if term.description:
            add(f"{dash}description: {scalar(term.description)}")
            dash = "    "
        add(f"{dash}id: {ids[term_id]}")
        add(f"    label: {scalar(term.label)}")
        if term.parent:
            add(f"    parent: {ref(term.parent)}")
        if term.related:
            add("    related:")
            lines += [f"      - {ref(item)}" for item in sorted(term.related)]
        if term.replaced_by:
            add(f"    replacedBy: {ref(term.replaced_by)}")
    return "\n".join(lines) + "\n"


def load(text: str) -> Any:
    """Parse YAML text: the fast path for reconciler's own shape, ruamel.yaml otherwise."""
    fast = _load_fast(text)
    if fast is not None:
        return fast
    try:
        return YAML(typ="safe", pure=True).load(io.StringIO(text))
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise YamlError(f"invalid YAML{where}: {problem}") from None


def _load_fast(text: str) -> dict[str, Any] | None:
    """The document if `text` is exactly in the shape `dump` writes, else None."""
    document: dict[str, Any] = {}
    terms: list[dict[str, Any]] | None = None
    current: dict[str, Any] = {}
    items: list[Any] | None = None
    if not text.endswith("\n"):
        return None
    for line in text[:-1].split("\n"):
        if (match := _LIST_ITEM.match(line)) and items is not None:
            items.append(_read(match["value"]))
        elif (match := _ITEM.match(line)) and terms is not None:
            if match["dash"] == "- ":
                current = {}
                terms.append(current)
            elif not terms:
                return None
            if match["key"] in current:
                return None
            items = None if match["value"] is not None else []
            current[match["key"]] = _read(match["value"]) if items is None else items
        elif (match := _TOP.match(line)) and match["key"] not in document:
            items, terms = None, None
            if match["key"] == "terms" and match["value"] in (None, "[]"):
                terms = document["terms"] = []
            elif match["key"] == "taxonomy" and match["value"] is not None:
                document["taxonomy"] = _read(match["value"])
            else:
                return None
        else:
            return None
    if any(value is _INVALID for term in document.get("terms", ()) for value in _values(term)):
        return None
    return document if document.get("taxonomy") is not _INVALID else None


_INVALID = object()


def _read(text: str) -> Any:
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except ValueError:
            return _INVALID
        return value if isinstance(value, str) else _INVALID
    if text in ("true", "false"):
        return text == "true"
    return text if scalar(text) == text else _INVALID


def _values(term: dict[str, Any]) -> list[Any]:
    return [v for value in term.values() for v in (value if isinstance(value, list) else [value])]
