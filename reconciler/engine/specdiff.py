"""Which fields of a resource's spec changed since it was last applied."""

from __future__ import annotations

from typing import Any


def changed_fields(before: Any, after: Any, path: str = "", depth: int = 3) -> list[str]:
    """Dotted paths of the fields that differ, at most `depth` levels deep (`spec.branches`).

    A plain keyed walk: linear in the size of the spec (a DeepDiff of a 10,000-term
    taxonomy takes seconds, and only the field names are shown here).
    """
    if before == after:
        return []
    if depth == 0 or not isinstance(before, dict) or not isinstance(after, dict):
        return [path or "spec"]
    found: list[str] = []
    for key in sorted(set(before) | set(after)):
        here = f"{path}.{key}" if path else str(key)
        found += changed_fields(before.get(key), after.get(key), here, depth - 1)
    return found
