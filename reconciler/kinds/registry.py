"""The explicit registry of kinds; adding a kind is one module and one register() call.

Shipped kinds are registered by import path and imported on first use, so a run that
only touches mirrors does not pay for importing every other kind.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from pydantic import BaseModel

from reconciler.kinds.base import Controller

SHIPPED = {
    "Mirror": "reconciler.kinds.mirror:MirrorController",
    "Taxonomy": "reconciler.kinds.taxonomy:TaxonomyController",
    "Environment": "reconciler.kinds.environment:EnvironmentController",
    "HealthPolicy": "reconciler.health.kind:HealthPolicyController",
}


class Registry:
    """Controllers by kind name; a duplicate registration is a programming error."""

    def __init__(self) -> None:
        self._controllers: dict[str, Controller] = {}
        self._lazy: dict[str, str] = {}

    def register(self, controller: Controller) -> None:
        """Add a controller; refuses a second one for the same kind."""
        self._refuse_duplicate(controller.kind)
        self._controllers[controller.kind] = controller

    def register_lazy(self, kind: str, target: str) -> None:
        """Add a controller by `module:Class`, imported when the kind is first used."""
        self._refuse_duplicate(kind)
        self._lazy[kind] = target

    def _refuse_duplicate(self, kind: str) -> None:
        if kind in self._controllers or kind in self._lazy:
            raise ValueError(f"kind {kind} is already registered")

    def __getitem__(self, kind: str) -> Controller:
        if kind not in self._controllers and kind in self._lazy:
            module, _, name = self._lazy.pop(kind).partition(":")
            controller: Controller = getattr(importlib.import_module(module), name)()
            self._controllers[kind] = controller
        return self._controllers[kind]

    def kinds(self) -> list[str]:
        """Every registered kind name, sorted."""
        return sorted({*self._controllers, *self._lazy})

    def spec_models(self) -> Mapping[str, type[BaseModel]]:
        """Kind name -> pydantic model of its `spec`, for loading and JSON Schema."""
        return _SpecModels(self)


class _SpecModels(Mapping[str, type[BaseModel]]):
    """A read-only view that imports a kind only when its model is asked for."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __getitem__(self, kind: str) -> type[BaseModel]:
        if kind not in self.registry.kinds():
            raise KeyError(kind)
        return self.registry[kind].spec_model

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.kinds())

    def __len__(self) -> int:
        return len(self.registry.kinds())


def default_registry() -> Registry:
    """Every kind reconciler ships."""
    registry = Registry()
    for kind, target in SHIPPED.items():
        registry.register_lazy(kind, target)
    return registry
