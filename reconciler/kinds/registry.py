"""The explicit registry of kinds; adding a kind is one module and one register() call."""

from __future__ import annotations

from pydantic import BaseModel

from reconciler.kinds.base import Controller


class Registry:
    """Controllers by kind name; a duplicate registration is a programming error."""

    def __init__(self) -> None:
        self._controllers: dict[str, Controller] = {}

    def register(self, controller: Controller) -> None:
        """Add a controller; refuses a second one for the same kind."""
        if controller.kind in self._controllers:
            raise ValueError(f"kind {controller.kind} is already registered")
        self._controllers[controller.kind] = controller

    def __getitem__(self, kind: str) -> Controller:
        return self._controllers[kind]

    def spec_models(self) -> dict[str, type[BaseModel]]:
        """Kind name -> pydantic model of its `spec`, for loading and JSON Schema."""
        return {kind: c.spec_model for kind, c in sorted(self._controllers.items())}


def default_registry() -> Registry:
    """Every kind reconciler ships."""
    from reconciler.kinds.environment import EnvironmentController
    from reconciler.kinds.health import HealthPolicyController
    from reconciler.kinds.mirror import MirrorController
    from reconciler.kinds.taxonomy import TaxonomyController

    registry = Registry()
    registry.register(MirrorController())
    registry.register(TaxonomyController())
    registry.register(EnvironmentController())
    registry.register(HealthPolicyController())
    return registry
