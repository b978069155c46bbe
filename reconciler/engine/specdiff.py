"""Which fields of a resource's spec changed since it was last applied (DeepDiff describes them)."""

from __future__ import annotations

import re
from typing import Any

_KEY = re.compile(r"\['([^']*)'\]|\[(\d+)\]")


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Dotted paths of the fields that differ, e.g. `spec.branches`, `metadata.labels`."""
    if before == after:
        return []
    from deepdiff import DeepDiff  # imported only when a spec changed: it is slow to import

    difference = DeepDiff(before, after, ignore_order=False)
    return sorted({_field(path) for path in difference.affected_paths})


def _field(path: str) -> str:
    """`root['spec']['branches'][1]` -> `spec.branches` (list positions are dropped)."""
    parts = [m.group(1) for m in _KEY.finditer(path) if m.group(1) is not None]
    return ".".join(parts[:3]) or "spec"
