"""A taxonomy term as the merge sees it: an immutable value, plus its document form.

Sets (aliases, related) are frozensets so that equality is order-free and element-wise
merging is set algebra. `Taxonomy` is a plain `dict[id, Term]`: lookups by id are what
every diff, merge and check needs, and they keep all of them linear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

SCALAR_FIELDS = ("label", "parent", "description", "deprecated", "replaced_by")
SET_FIELDS = ("aliases", "related")
REFERENCE_FIELDS = ("parent", "related", "replaced_by")
# Field name in Python -> key in documents and specs.
DOCUMENT_KEYS = {"replaced_by": "replacedBy"}
DOCUMENT_FIELDS = {"id", "label", "parent", "aliases", "related", "description"}
DOCUMENT_FIELDS |= {"deprecated", "replacedBy"}


class Term(NamedTuple):
    """One term of a taxonomy (a named tuple: cheap to build and to compare, immutable)."""

    id: str
    label: str
    parent: str | None = None
    aliases: frozenset[str] = frozenset()
    related: frozenset[str] = frozenset()
    description: str | None = None
    deprecated: bool = False
    replaced_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The document form: keys sorted, empty fields left out, sets as sorted lists."""
        data: dict[str, Any] = {}
        if self.aliases:
            data["aliases"] = sorted(self.aliases)
        if self.deprecated:
            data["deprecated"] = True
        if self.description:
            data["description"] = self.description
        data["id"] = self.id
        data["label"] = self.label
        if self.parent:
            data["parent"] = self.parent
        if self.related:
            data["related"] = sorted(self.related)
        if self.replaced_by:
            data["replacedBy"] = self.replaced_by
        return data

    def with_values(self, **values: Any) -> Term:
        """A copy with some fields changed."""
        return self._replace(**values)

    def references(self) -> Iterable[tuple[str, str]]:
        """(field, id) for every id this term refers to."""
        if self.parent:
            yield "parent", self.parent
        for other in sorted(self.related):
            yield "related", other
        if self.replaced_by:
            yield "replaced_by", self.replaced_by


Taxonomy = dict[str, Term]


def document_key(name: str) -> str:
    """The document key of a Term field (`replaced_by` -> `replacedBy`)."""
    return DOCUMENT_KEYS.get(name, name)


def plain(value: Any) -> Any:
    """A field value as documents and plans show it: a set as a sorted list."""
    return sorted(value) if isinstance(value, frozenset) else value


def field_names() -> list[str]:
    """Every Term field but `id`."""
    return [name for name in Term._fields if name != "id"]


class TermError(ValueError):
    """A term in a document is malformed."""


def term_from_dict(data: Mapping[str, Any]) -> Term:
    """Read one term of a target document, strictly: a malformed term raises TermError."""
    if not isinstance(data, Mapping):
        raise TermError("a term must be a mapping")
    if not data.keys() <= DOCUMENT_FIELDS:
        raise TermError(f"unknown field {sorted(set(data) - DOCUMENT_FIELDS)[0]!r}")
    term_id, label = data.get("id"), data.get("label")
    if not isinstance(term_id, str) or not term_id or not isinstance(label, str) or not label:
        raise TermError(_missing(data))
    deprecated = data.get("deprecated", False)
    if not isinstance(deprecated, bool):
        raise TermError(f"term {term_id!r}: deprecated must be true or false")
    return Term(
        term_id,
        label,
        _text(data, "parent", term_id),
        _strings(data, "aliases", term_id),
        _strings(data, "related", term_id),
        _text(data, "description", term_id),
        deprecated,
        _text(data, "replacedBy", term_id),
    )


def _missing(data: Mapping[str, Any]) -> str:
    for key in ("id", "label"):
        value = data.get(key)
        if not isinstance(value, str) or not value:
            what = "without" if value in (None, "") else "with a non-string"
            return f"a term {what} {key!r}" + _named(data)
    return "malformed term"


def _text(data: Mapping[str, Any], key: str, term_id: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TermError(f"term {term_id!r}: {key} must be a string")
    return value


_EMPTY: frozenset[str] = frozenset()


def _strings(data: Mapping[str, Any], key: str, term_id: str) -> frozenset[str]:
    value = data.get(key)
    if not value:
        return _EMPTY
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TermError(f"term {term_id!r}: {key} must be a list of strings")
    return frozenset(value)


def _named(data: Mapping[str, Any]) -> str:
    term_id = data.get("id")
    return f" (term {term_id!r})" if isinstance(term_id, str) else ""


def taxonomy_of(terms: Iterable[Term]) -> Taxonomy:
    """Terms keyed by id (a later duplicate replaces an earlier one)."""
    return {term.id: term for term in terms}


def live(term: Term) -> bool:
    """A term that is not deprecated: its aliases and label must be unambiguous."""
    return not term.deprecated
