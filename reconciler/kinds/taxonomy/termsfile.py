"""Terms kept in a file next to the spec (`termsFrom: {file, format}`): JSON or CSV.

JSON is a list of terms, or an object `{"terms": [...]}` (a target file's shape, its
`taxonomy` key ignored), each term written as in a spec. CSV has a header row naming its
columns (`id` and `label` required; `parent`, `aliases`, `related`, `description`,
`deprecated`, `replacedBy` optional, in any order); `aliases` and `related` are
`|`-separated, an empty cell is an absent field, `deprecated` is `true` or `false`.

Reading is linear and fast for well-formed terms (a plain type check per field); a term the
fast check does not accept is validated by the spec's own `TermSpec` model, so its errors
and coercions are exactly those of a term written in the spec. Problems carry the term's
index, its field and its line (CSV: the row's; JSON: found by a scan of the text, made only
when there is a problem to place).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from reconciler.kinds.taxonomy.terms import Term

FIELDS = ("id", "label", "parent", "aliases", "related", "description", "deprecated", "replacedBy")
_FIELD_SET = frozenset(FIELDS)
_SETS = ("aliases", "related")
_TERM_ID = re.compile(r"^[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*\Z")
Loc = tuple[str | int, ...]


class FileTerm(NamedTuple):
    """One term as read from a terms file (the fields of `TermSpec`, in its order)."""

    id: str
    label: str
    parent: str | None
    aliases: list[str]
    related: list[str]
    description: str | None
    deprecated: bool
    replacedBy: str | None

    def term(self) -> Term:
        """The merge's view of this term."""
        return Term(
            self.id,
            self.label,
            self.parent,
            frozenset(self.aliases),
            frozenset(self.related),
            self.description or None,
            self.deprecated,
            self.replacedBy,
        )


@dataclass
class TermsRead:
    """What a terms file gave: its terms, its problems and where they are, its digest."""

    terms: list[FileTerm] = field(default_factory=list)
    problems: list[tuple[int | None, Loc, str]] = field(default_factory=list)  # (index, loc, msg)
    digest: str = ""
    shown: str = ""  # the file as messages name it
    locate: Callable[[int | None, Loc], int | None] = lambda _index, _loc: None


def read_terms(path: Path, fmt: str) -> TermsRead:
    """Read and check every term of the file at `path` (`fmt`: json or csv)."""
    read = TermsRead()
    try:
        data = path.read_bytes()
    except OSError as error:
        read.problems.append((None, (), f"cannot read: {error.strerror or error}"))
        return read
    read.digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        read.locate = lambda _index, _loc: line
        read.problems.append((None, (), f"not UTF-8 text (byte 0x{data[error.start]:02x})"))
        return read
    items = _json_items(text, read) if fmt == "json" else _csv_items(text, read)
    for index, item in enumerate(items):
        term = fast_term(item)
        if term is None:
            term = _checked_term(item, index, read)
        if term is not None:
            read.terms.append(term)
    return read


# -- JSON ----------------------------------------------------------------------------------
def _json_items(text: str, read: TermsRead) -> list[Any]:
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as error:
        line = error.lineno
        read.locate = lambda _index, _loc: line
        read.problems.append((None, (), f"invalid JSON: {error.msg}"))
        return []
    except _DuplicateKey as error:
        read.problems.append((None, (), str(error)))
        return []
    read.locate = _JsonLines(text).line
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"taxonomy", "terms"})
        if unknown:
            read.problems.append((None, (), f"unknown top-level key {unknown[0]!r}"))
            return []
        data = data.get("terms")
    if not isinstance(data, list):
        read.problems.append((None, (), 'expected a list of terms, or {"terms": [...]}'))
        return []
    return data


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for index, key in enumerate(keys) if key in keys[:index])
        raise _DuplicateKey(f"duplicate key {duplicate!r} in a mapping")
    return data


_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}:,\n]')


class _JsonLines:
    """Lines of the terms in a JSON text (and of their keys), found by one scan of its
    tokens the first time a problem needs placing."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts: list[int] | None = None
        self.keys: dict[tuple[int, str], int] = {}

    def line(self, index: int | None, loc: Loc) -> int | None:
        """The line of term `index`'s field `loc[0]` (else of the term); None: unknown."""
        if self.starts is None:
            self._scan()
        assert self.starts is not None
        if index is None or index >= len(self.starts):
            return None
        if loc and isinstance(loc[0], str) and (index, loc[0]) in self.keys:
            return self.keys[(index, loc[0])]
        return self.starts[index]

    def _scan(self) -> None:
        self.starts = []
        line, depth, terms_depth = 1, 0, -1
        previous, key = "", ""
        for match in _TOKEN.finditer(self.text):
            token = match.group()
            if token == "\n":
                line += 1
                continue
            if token in "[{":
                depth += 1
                if token == "[" and terms_depth < 0 and (depth == 1 or key == "terms"):
                    terms_depth = depth
                elif token == "{" and depth == terms_depth + 1 and terms_depth > 0:
                    self.starts.append(line)
            elif token in "]}":
                depth -= 1
            elif token[0] == '"' and previous in "{,":
                key = token[1:-1]
                if depth == terms_depth + 1 and self.starts:
                    self.keys.setdefault((len(self.starts) - 1, key), line)
            previous = token if token in "{,:[]}" else '"'


# -- CSV -----------------------------------------------------------------------------------
def _csv_items(text: str, read: TermsRead) -> list[dict[str, Any]]:
    rows = csv.reader(io.StringIO(text, newline=""))
    lines: list[int] = []
    read.locate = lambda index, _loc: 1 if index is None else lines[index]
    try:
        header = next(rows, None)
        if header is None:
            read.problems.append((None, (), "empty file: expected a header row (id,label,...)"))
            return []
        problem = _header_problem(header)
        if problem:
            read.problems.append((None, (), problem))
            return []
        items: list[dict[str, Any]] = []
        start = rows.line_num + 1
        for row in rows:
            if row:
                lines.append(start)
                items.append(_csv_item(header, row, len(items), read))
            start = rows.line_num + 1
    except csv.Error as error:
        line = rows.line_num
        read.locate = lambda _index, _loc: line
        read.problems.append((None, (), f"invalid CSV: {error}"))
        return []
    return items


def _header_problem(header: list[str]) -> str | None:
    for index, name in enumerate(header):
        if name not in _FIELD_SET:
            return f"unknown column {name!r}; valid columns: {', '.join(FIELDS)}"
        if name in header[:index]:
            return f"column {name!r} is named twice"
    missing = [name for name in ("id", "label") if name not in header]
    return f"no {missing[0]!r} column" if missing else None


def _csv_item(header: list[str], row: list[str], index: int, read: TermsRead) -> dict[str, Any]:
    if len(row) != len(header):
        read.problems.append((index, (), f"{len(row)} cells, the header has {len(header)}"))
    item: dict[str, Any] = {}
    for name, cell in zip(header, row, strict=False):
        if cell == "":
            continue
        if name in _SETS:
            item[name] = cell.split("|")
        elif name == "deprecated" and cell.lower() in ("true", "false"):
            item[name] = cell.lower() == "true"
        else:
            item[name] = cell  # `deprecated: yes` and the like: TermSpec decides
    return item


# -- terms ---------------------------------------------------------------------------------
def fast_term(item: Any) -> FileTerm | None:
    """The term if `item` is a well-formed term in plain types; None otherwise (then the
    model decides, with its own messages). Accepts only what `TermSpec` accepts unchanged."""
    if type(item) is not dict or not item.keys() <= _FIELD_SET:
        return None
    term_id, label = item.get("id"), item.get("label")
    if not _is_id(term_id) or type(label) is not str or not label.strip():
        return None
    parent, replaced_by = item.get("parent"), item.get("replacedBy")
    if (parent is not None and not _is_id(parent)) or (
        replaced_by is not None and not _is_id(replaced_by)
    ):
        return None
    description, deprecated = item.get("description"), item.get("deprecated", False)
    if (description is not None and type(description) is not str) or type(deprecated) is not bool:
        return None
    aliases, related = item.get("aliases", []), item.get("related", [])
    if not _is_set(aliases) or not _is_set(related) or not all(map(_is_id, related)):
        return None
    return FileTerm(term_id, label, parent, aliases, related, description, deprecated, replaced_by)


def _is_id(value: Any) -> bool:
    return type(value) is str and len(value) <= 200 and _TERM_ID.match(value) is not None


def _is_set(values: Any) -> bool:
    if type(values) is not list:
        return False
    if not values:
        return True
    folded = set()
    for value in values:
        if type(value) is not str or not value.strip():
            return False
        folded.add(value.casefold())
    return len(folded) == len(values)


def _checked_term(item: Any, index: int, read: TermsRead) -> FileTerm | None:
    """A term the fast check refused, validated by TermSpec (its errors into `read`)."""
    from reconciler.kinds.taxonomy.model import TermSpec  # model imports this module

    try:
        spec = TermSpec.model_validate(item)
    except ValidationError as error:
        for detail in error.errors(include_url=False):
            inner = getattr(detail.get("ctx", {}).get("error"), "loc", ())
            loc: Loc = (*detail["loc"], *inner)
            read.problems.append((index, loc, _message(detail["type"], str(detail["msg"]))))
        return None
    return FileTerm(
        spec.id,
        spec.label,
        spec.parent,
        spec.aliases,
        spec.related,
        spec.description,
        spec.deprecated,
        spec.replacedBy,
    )


def _message(kind: str, message: str) -> str:
    """Pydantic's message in the specs' words (as the loader words a spec's)."""
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return f"unknown field; valid fields: {', '.join(sorted(FIELDS))}"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message[:1].lower() + message[1:]
