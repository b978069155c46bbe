"""Loading a Taxonomy's `termsFrom` file at validation: where it may be, its terms, and its
problems worded `FILE:LINE: terms[3].parent: message` (attached to `spec.termsFrom.file`,
so each line also names the spec file and the resource that reads it).

The file must be inside the spec file's directory: no `..`, no absolute path, no link that
leads out of it (the spec is what a review reads; the terms it pulls in come with it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic_core import InitErrorDetails

from reconciler.kinds.taxonomy.speccheck import Loc, error_details, spec_problems
from reconciler.kinds.taxonomy.termsfile import TermsRead, read_terms

if TYPE_CHECKING:
    from reconciler.kinds.taxonomy.model import TaxonomySpec, TermsFrom

_AT = ("termsFrom", "file")


def load_terms(
    spec: TaxonomySpec, terms_from: TermsFrom, base_dir: object
) -> tuple[TermsRead, list[InitErrorDetails]]:
    """Read the spec's `termsFrom` file: what it gave, and the problems of the file and of
    its terms."""
    if "terms" in spec.model_fields_set:
        message = "terms and termsFrom exclude each other: keep the terms in one place"
        return TermsRead(), [error_details(("terms",), message, None)]
    base = Path(str(base_dir)) if base_dir is not None else Path()
    path = base / terms_from.file
    if not path.resolve().is_relative_to(base.resolve()):
        message = f"{terms_from.file} leads out of the spec file's directory (through a link)"
        return TermsRead(), [error_details(_AT, message, terms_from.file)]
    read = read_terms(path, terms_from.format or "json")
    read.shown = _shown(path)
    return read, [_located(read, index, loc, text) for index, loc, text in read.problems]


def check_with_terms(spec: TaxonomySpec, read: TermsRead) -> list[InitErrorDetails]:
    """The checks across terms, merges and targets (the spec holds the file's terms), a
    term's problem placed in the file."""
    errors = []
    for loc, message, value in spec_problems(spec, read.written):
        if loc and loc[0] == "terms":
            index = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
            errors.append(_located(read, index, loc[2:], message))
        else:
            errors.append(error_details(loc, message, value))
    return errors


def _located(read: TermsRead, index: int | None, loc: Loc, message: str) -> InitErrorDetails:
    line = read.locate(index, loc)
    where = f"{read.shown}:{line}" if line else read.shown
    if index is not None:
        where += f": {_field(('terms', index, *loc))}"
    return error_details(_AT, f"{where}: {message}", None)


def _field(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(path: Path) -> str:
    """The file as messages name it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative
