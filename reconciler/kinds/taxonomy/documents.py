"""Target files: `{"taxonomy": NAME, "terms": [...]}` as JSON or YAML, byte-for-byte stable.

Terms are sorted by id, keys sorted, empty fields left out, two-space indentation and a
trailing newline, so the same content always gives the same bytes and a changed term
changes only its own lines. Reading is strict: a file that is not such a document raises
DocumentError, and the target is blocked rather than overwritten.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring, encode_basestring_ascii
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
    if fmt == "yaml":
        return yamlio.dump_terms(name, terms)
    return render_json(name, terms)


def render_json(name: str, terms: Taxonomy) -> str:
    """`json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)` and a newline,
    written directly: the same bytes in a fifth of the time (json's indenting encoder is
    pure Python; a term's keys and value types are fixed, so its lines are too)."""
    quote = encode_basestring
    items = []
    for term_id in sorted(terms):
        term = terms[term_id]
        lines = []
        if term.aliases:
            lines.append(_json_list("aliases", term.aliases))
        if term.deprecated:
            lines.append('      "deprecated": true')
        if term.description:
            lines.append('      "description": ' + quote(term.description))
        lines.append('      "id": ' + quote(term.id))
        lines.append('      "label": ' + quote(term.label))
        if term.parent:
            lines.append('      "parent": ' + quote(term.parent))
        if term.related:
            lines.append(_json_list("related", term.related))
        if term.replaced_by:
            lines.append('      "replacedBy": ' + quote(term.replaced_by))
        items.append("    {\n" + ",\n".join(lines) + "\n    }")
    body = "[\n" + ",\n".join(items) + "\n  ]" if items else "[]"
    return '{\n  "taxonomy": ' + quote(name) + ',\n  "terms": ' + body + "\n}\n"


def _json_list(key: str, values: frozenset[str]) -> str:
    inner = ",\n".join("        " + encode_basestring(v) for v in sorted(values))
    return f'      "{key}": [\n{inner}\n      ]'


def canonical_items(terms: Taxonomy) -> list[str]:
    """Each term's canonical JSON (sorted keys, compact, ASCII: `json.dumps` of its
    document form with the store's settings), in id order: the pieces a version's digest
    and its stored chunks are made of, written directly (a fifth of the time)."""
    quote = encode_basestring_ascii
    texts = []
    for term_id in sorted(terms):
        term = terms[term_id]
        parts = []
        if term.aliases:
            parts.append('"aliases":[' + ",".join(map(quote, sorted(term.aliases))) + "]")
        if term.deprecated:
            parts.append('"deprecated":true')
        if term.description:
            parts.append('"description":' + quote(term.description))
        parts.append('"id":' + quote(term.id))
        parts.append('"label":' + quote(term.label))
        if term.parent:
            parts.append('"parent":' + quote(term.parent))
        if term.related:
            parts.append('"related":[' + ",".join(map(quote, sorted(term.related))) + "]")
        if term.replaced_by:
            parts.append('"replacedBy":' + quote(term.replaced_by))
        texts.append("{" + ",".join(parts) + "}")
    return texts


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
