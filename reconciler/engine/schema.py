"""The JSON Schema of every kind's spec document, for editors."""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from reconciler.kinds.registry import Registry
from reconciler.specs.envelope import Metadata


def json_schema(registry: Registry) -> dict[str, Any]:
    """One schema accepting any spec document, discriminated by `kind`."""
    definitions: dict[str, Any] = {}
    variants = []
    metadata = TypeAdapter(Metadata).json_schema(ref_template="#/$defs/{model}")
    definitions.update(metadata.pop("$defs", {}))
    definitions["Metadata"] = metadata
    for kind, model in registry.spec_models().items():
        spec = _separate(kind, model.model_json_schema(ref_template="#/$defs/{model}"), definitions)
        definitions.update(spec.pop("$defs", {}))
        definitions[f"{kind}Spec"] = spec
        variants.append(
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["apiVersion", "kind", "metadata", "spec"],
                "properties": {
                    "apiVersion": {"const": "reconciler/v1"},
                    "kind": {"const": kind},
                    "metadata": {"$ref": "#/$defs/Metadata"},
                    "spec": {"$ref": f"#/$defs/{kind}Spec"},
                },
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "reconciler spec document",
        "oneOf": variants,
        "$defs": definitions,
    }


def _separate(kind: str, spec: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """`spec` with each of its definitions whose name another kind already uses for a
    different model (two kinds' `TargetSpec`) renamed `<kind><name>`, references included."""
    taken = [
        name
        for name, definition in spec.get("$defs", {}).items()
        if name in definitions and definitions[name] != definition
    ]
    text = json.dumps(spec)
    for name in taken:
        text = text.replace(f'"#/$defs/{name}"', f'"#/$defs/{kind}{name}"')
    separated: dict[str, Any] = json.loads(text)
    for name in taken:
        separated["$defs"][f"{kind}{name}"] = separated["$defs"].pop(name)
    return separated
