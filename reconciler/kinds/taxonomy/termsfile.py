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


@dataclass
class TermsRead:
    """What a terms file gave: its terms, its problems and where they are, its digest."""

    terms: list[Term] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)  # as parsed, for placing problems
    problems: list[tuple[int | None, Loc, str]] = field(default_factory=list)  # (index, loc, msg)
    digest: str = ""
    shown: str = ""  # the file as messages name it
    locate: Callable[[int | None, Loc], int | None] = lambda _index, _loc: None

    def written(self, index: int) -> FileTerm:
        """Term `index` as written (for placing a problem in one of its lists)."""
        item = self.items[index]
        return FileTerm(
            item["id"],
            item["label"],
            item.get("parent"),
            item.get("aliases") or [],
            item.get("related") or [],
            item.get("description"),
            item.get("deprecated", False),
            item.get("replacedBy"),
        )


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
    read.items = _json_items(text, read) if fmt == "json" else _csv_items(text, read)
    terms = [fast_term(item) for item in read.items]
    if None in terms or not _ids_valid(terms):
        for index, item in enumerate(read.items):
            term = terms[index]
            if term is None or not all(map(_is_id, _ids_of(term))):
                terms[index] = _checked_term(item, index, read)
    if not read.problems:
        read.terms = terms  # type: ignore[assignment]  # no None left
    return read


# -- JSON ----------------------------------------------------------------------------------
def _json_items(text: str, read: TermsRead) -> list[Any]:
    try:
        data = json.loads(text)
        if len(_KEY.findall(text)) != _keys(data):  # perhaps a key written twice
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


# Where a key ends (`"name":`); inside a string only after an escaped quote, so the text
# never holds fewer matches than the document has keys: equal counts, no key twice.
_KEY = re.compile(r'"\s*:')


def _keys(data: Any) -> int:
    """The keys of the top-level mapping and of the terms (what a duplicate would hide)."""
    terms = data.get("terms") if isinstance(data, dict) else data
    count = len(data) if isinstance(data, dict) else 0
    if isinstance(terms, list):
        count += sum(len(item) for item in terms if isinstance(item, dict))
    return count


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
_EMPTY: frozenset[str] = frozenset()
_ABSENT: Any = object()
_IDS = re.compile(r"[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*(?:\n[A-Za-z0-9_]+(?:[.-][A-Za-z0-9_]+)*)*")


def fast_term(item: Any) -> Term | None:
    """The term if `item` is a well-formed term in plain types (its ids checked apart, all
    at once); None otherwise, and then the model decides, with its own messages. Accepts
    only what `TermSpec` accepts unchanged."""
    if type(item) is not dict or not item.keys() <= _FIELD_SET:
        return None
    get = item.get
    term_id, label, parent = get("id"), get("label"), get("parent")
    description, deprecated, replaced_by = get("description"), get("deprecated"), get("replacedBy")
    if (
        type(term_id) is not str
        or type(label) is not str
        or not label.strip()
        or (parent is not None and type(parent) is not str)
        or (replaced_by is not None and type(replaced_by) is not str)
        or (description is not None and type(description) is not str)
        or (deprecated is not None and type(deprecated) is not bool)
        or ("deprecated" in item and deprecated is None)
    ):
        return None
    aliases, related = _set(get("aliases", _ABSENT)), _set(get("related", _ABSENT))
    if aliases is None or related is None:
        return None
    return Term(
        term_id, label, parent, aliases, related, description or None, bool(deprecated), replaced_by
    )


def _set(values: Any) -> frozenset[str] | None:
    """A list of distinct (case-insensitively), non-blank strings as a set; None otherwise."""
    if values is _ABSENT:
        return _EMPTY
    if type(values) is not list:
        return None
    if not values:
        return _EMPTY
    for value in values:
        if type(value) is not str or not value.strip():
            return None
    if len({value.casefold() for value in values}) != len(values):
        return None
    return frozenset(values)


def _ids_of(term: Term) -> list[str]:
    ids = [term.id, *term.related]
    if term.parent is not None:
        ids.append(term.parent)
    if term.replaced_by is not None:
        ids.append(term.replaced_by)
    return ids


def _ids_valid(terms: list[Term | None]) -> bool:
    """Every id and reference of `terms` is a valid term id: one match over all of them
    (a value holding the separator adds one, and the count tells)."""
    values = [value for term in terms if term is not None for value in _ids_of(term)]
    if not values:
        return True
    joined = "\n".join(values)
    return (
        joined.count("\n") == len(values) - 1
        and max(map(len, values)) <= 200
        and _IDS.fullmatch(joined) is not None
    )


def _is_id(value: Any) -> bool:
    return type(value) is str and len(value) <= 200 and _TERM_ID.match(value) is not None


def _checked_term(item: Any, index: int, read: TermsRead) -> Term | None:
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
    return spec.term()


def _message(kind: str, message: str) -> str:
    """Pydantic's message in the specs' words (as the loader words a spec's)."""
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return f"unknown field; valid fields: {', '.join(sorted(FIELDS))}"
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return message[:1].lower() + message[1:]
