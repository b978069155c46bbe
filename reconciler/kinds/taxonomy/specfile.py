"""Editing a Taxonomy's terms inside its spec file with ruamel.yaml's round trip.

Only the touched keys change: comments, key order, quoting, flow or block style and the
file's indentation stay as they were, so the result is a small diff to commit.
"""

from __future__ import annotations

import io
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from reconciler.errors import ReconcilerError
from reconciler.kinds.taxonomy.terms import Term

_KEY_LINE = re.compile(r"^(?P<indent> *)[^\s#-][^:#]*:\s*(#.*)?$")
_ORDER = ("id", "label", "parent", "aliases", "related", "description", "deprecated", "replacedBy")


@dataclass
class SpecFile:
    """One spec file, loaded for editing the `spec.terms` of one Taxonomy in it."""

    path: Path
    documents: list[Any]
    spec: CommentedMap
    yaml: YAML
    positions: dict[str, int] | None = None  # term id -> index in `terms`, built on demand

    @classmethod
    def load(cls, path: Path, name: str) -> SpecFile:
        """Read the file and find the Taxonomy document called `name`."""
        text = path.read_text(encoding="utf-8")
        yaml = _round_trip(text)
        try:
            documents = list(yaml.load_all(text))
        except YAMLError as error:
            raise ReconcilerError(f"{path}: cannot read it back: {error}") from None
        for document in documents:
            if _is_taxonomy(document, name):
                spec = document["spec"]
                if "terms" not in spec:
                    spec["terms"] = CommentedSeq()
                return cls(path, documents, spec, yaml)
        raise ReconcilerError(f"{path}: no Taxonomy document named {name}")

    @property
    def terms(self) -> CommentedSeq:
        """The `terms:` list as written."""
        terms: CommentedSeq = self.spec["terms"]
        return terms

    def _index(self, term_id: str) -> int:
        if self.positions is None:  # built once, and again after a removal
            self.positions = {
                str(item.get("id")): index
                for index, item in enumerate(self.terms)
                if isinstance(item, dict)
            }
        return self.positions[term_id]

    def add(self, term: Term) -> None:
        """Append a term, in the style of the terms before it."""
        values = {key: value for key, value in term.to_dict().items() if value not in ([], None)}
        item = CommentedMap((key, _node(values[key])) for key in _ORDER if key in values)
        if self.terms and _is_flow(self.terms[-1]):
            item.fa.set_flow_style()
        self.terms.append(item)

    def remove(self, term_id: str) -> None:
        """Drop a term."""
        del self.terms[self._index(term_id)]
        self.positions = None

    def update(self, term_id: str, values: dict[str, Any]) -> None:
        """Set fields of a term (None, False or an empty set removes the key)."""
        item = self.terms[self._index(term_id)]
        for key, value in values.items():
            if value in (None, False) or value == frozenset():
                item.pop(key, None)
            elif isinstance(value, frozenset) and isinstance(item.get(key), CommentedSeq):
                _set_items(item[key], value)
            else:
                item[key] = _node(value)

    def save(self) -> None:
        """Write the file back (atomically)."""
        buffer = io.StringIO()
        self.yaml.dump_all(self.documents, buffer)
        temporary = self.path.with_suffix(self.path.suffix + ".reconciler-tmp")
        temporary.write_text(buffer.getvalue(), encoding="utf-8")
        temporary.replace(self.path)


def _round_trip(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    mapping, sequence, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.explicit_start = text.lstrip().startswith("---")
    return yaml


def _indentation(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel.yaml names them, guessed from the text."""
    mapping, offset = None, None
    lines = text.splitlines()
    for line, after in itertools.pairwise(lines):
        key = _KEY_LINE.match(line)
        if key is None or not after.strip():
            continue
        depth = len(key["indent"])
        inner = len(after) - len(after.lstrip(" "))
        if after.lstrip().startswith("- ") and offset is None and inner >= depth:
            offset = inner - depth
        elif mapping is None and inner > depth and not after.lstrip().startswith("#"):
            mapping = inner - depth
    mapping, offset = mapping or 2, offset if offset is not None else 2
    return mapping, offset + 2, offset


def _is_taxonomy(document: Any, name: str) -> bool:
    if not isinstance(document, dict) or document.get("kind") != "Taxonomy":
        return False
    metadata = document.get("metadata")
    return isinstance(metadata, dict) and metadata.get("name") == name


def _is_flow(node: Any) -> bool:
    return isinstance(node, CommentedMap) and bool(node.fa.flow_style())


def _node(value: Any) -> Any:
    if isinstance(value, frozenset | list):
        items = CommentedSeq(sorted(value))
        items.fa.set_flow_style()
        return items
    return value


def _set_items(items: CommentedSeq, wanted: frozenset[str]) -> None:
    """Make a written list hold `wanted`, keeping the order (and comments) of what stays."""
    for index in reversed(range(len(items))):
        if items[index] not in wanted:
            del items[index]
    items.extend(sorted(wanted - set(items)))
