"""`reconciler schema`: every kind's part of the one schema says what that kind's model says."""

from __future__ import annotations

import json
from typing import Any

from reconciler.kinds.registry import default_registry
from tests.conftest import Workspace, ok


def _inlined(node: Any, definitions: dict[str, Any]) -> Any:
    """`node` with every `$ref` replaced by the definition it names."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inlined(definitions[node["$ref"].rsplit("/", 1)[1]], definitions)
        return {k: _inlined(v, definitions) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inlined(v, definitions) for v in node]
    return node


def test_each_kind_in_the_schema_is_its_own_model_even_when_two_kinds_share_a_model_name(
    ws: Workspace,
) -> None:
    # Environment and Taxonomy both have a `TargetSpec`: one used to overwrite the other, so
    # an editor offered an Environment's `target` the fields of a Taxonomy target.
    schema = json.loads(ok(ws.run("schema")).stdout)
    for kind, model in default_registry().spec_models().items():
        own = model.model_json_schema(ref_template="#/$defs/{model}")
        expected = _inlined(own, own.get("$defs", {}))
        assert _inlined(schema["$defs"][f"{kind}Spec"], schema["$defs"]) == expected, kind
