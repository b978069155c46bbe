"""Target files: `{"taxonomy": NAME, "terms": [...]}` as JSON or YAML, byte-for-byte stable.

Terms are sorted by id, keys sorted, empty fields left out, two-space indentation and a
trailing newline, so the same content always gives the same bytes and a changed term
changes only its own lines. Reading is strict: a file that is not such a document raises
DocumentError, and the target is blocked rather than overwritten.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from reconciler.kinds.taxonomy import yamlio
from reconciler.kinds.taxonomy.terms import Taxonomy, Term, TermError, term_from_dict

Format = Literal["json", "yaml"]


class DocumentError(ValueError):
    """A target file that is not a taxonomy document."""


def document(name: str, terms: Taxonomy) -> dict[str, Any]:
    """The document as data (also the content of a stored version)."""
    return {"taxonomy": name, "terms": [terms[i].to_dict() for i in sorted(terms)]}


def render(name: str, terms: Taxonomy, fmt: Format) -> str:
    """The file's text."""
    data = document(name, terms)
    if fmt == "yaml":
        return yamlio.dump(name, data["terms"])
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def parse(text: str, fmt: Format, name: str) -> Taxonomy:
    """The terms of a target file's text; DocumentError says what is wrong with it."""
    data = _load(text, fmt)
    if not isinstance(data, dict):
        raise DocumentError("not a taxonomy document: expected a mapping with `terms`")
    unknown = sorted(set(data) - {"taxonomy", "terms"})
    if unknown:
        raise DocumentError(f"unknown top-level key {unknown[0]!r}")
    if data.get("taxonomy", name) != name:
        raise DocumentError(f"the file holds taxonomy {data['taxonomy']!r}, not {name!r}")
    items = data.get("terms")
    if not isinstance(items, list):
        raise DocumentError("`terms` must be a list")
    return _terms(items)


def from_content(content: Any) -> Taxonomy:
    """The terms of a stored version (a document as data)."""
    return _terms(content["terms"])


def _terms(items: list[Any]) -> Taxonomy:
    terms: Taxonomy = {}
    for index, item in enumerate(items):
        try:
            term: Term = term_from_dict(item)
        except TermError as error:
            raise DocumentError(f"terms[{index}]: {error}") from None
        if term.id in terms:
            raise DocumentError(f"terms[{index}]: duplicate term id {term.id!r}")
        terms[term.id] = term
    return terms


def _load(text: str, fmt: Format) -> Any:
    if fmt == "yaml":
        try:
            return yamlio.load(text)
        except yamlio.YamlError as error:
            raise DocumentError(str(error)) from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        raise DocumentError(f"invalid JSON (line {error.lineno}): {error.msg}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise DocumentError(f"duplicate key {duplicate!r} in a mapping")
    return data
