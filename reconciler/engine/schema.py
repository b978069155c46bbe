"""The JSON Schema of every kind's spec document, for editors."""

from __future__ import annotations

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
        spec = model.model_json_schema(ref_template="#/$defs/{model}")
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
