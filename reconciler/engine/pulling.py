"""Pulling: a kind that can take the edits made downstream back into its spec file does so
(`taxonomy pull`); the cli asks here, never the kind."""

from __future__ import annotations

from reconciler.engine.planning import load
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError
from reconciler.kinds.base import Puller, PullReport, UnknownTarget

__all__ = ["PullReport", "UnknownTarget", "pull_edits"]


def pull_edits(
    workspace: Workspace, kind: str, name: str, target: str | None, write: bool
) -> PullReport:
    """Load the specs and pull the downstream edits of resource `kind/name` (of every target,
    or of the one `target` names: UnknownTarget if none) into its spec file."""
    specs = load(workspace)
    resource = specs.by_address().get(f"{kind}/{name}")
    if resource is None:
        raise ReconcilerError(f"no {kind} named {name} in {specs.source}")
    controller = workspace.registry[resource.kind]
    if not isinstance(controller, Puller):
        raise ReconcilerError(f"{kind} resources cannot be pulled")
    return controller.pull(resource, target, workspace.context(specs), write)
