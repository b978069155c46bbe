"""The dependency graph of resources: order, dangling references and cycles."""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable

from reconciler.errors import SpecError, SpecProblem
from reconciler.kinds.base import Claimer, Referrer
from reconciler.kinds.registry import Registry
from reconciler.specs import Resource, SpecSet

_LAST: list[tuple[SpecSet, Registry, dict[str, set[str]]]] = []  # the last graph made
_LAST_PART = re.compile(r"(\.[^.\[]+|\[[^\]]*\])$")  # `.url` or `[1]` at the end of a field


def dependencies(specs: SpecSet, registry: Registry) -> dict[str, set[str]]:
    """Address -> addresses it depends on; raises SpecError on dangling references and cycles.

    The graph of the last SpecSet asked for is kept (callers only read it): one run asks at
    load, plan and apply, and a watcher's save once more for the dependents of a change.
    """
    last = _LAST[0] if _LAST else None
    if last is not None and last[0] is specs and last[1] is registry:
        return last[2]
    graph = _graph(specs, registry)
    _LAST[:] = [(specs, registry, graph)]
    return graph


def _graph(specs: SpecSet, registry: Registry) -> dict[str, set[str]]:
    resources = specs.by_address()
    graph: dict[str, set[str]] = {}
    problems: list[SpecProblem] = []
    fields: dict[tuple[str, str], str] = {}
    kinds = _kinds(registry, resources.values())
    referrers = {k: c for k, c in kinds.items() if isinstance(c, Referrer)}
    for address, resource in resources.items():
        wanted = dict.fromkeys(resource.depends_on, "metadata.dependsOn")
        referrer = referrers.get(resource.kind)
        if referrer is not None:
            wanted.update(referrer.references(resource))
        for target, field in wanted.items():
            fields[(address, target)] = field
            if target not in resources:
                message = f"depends on {target}, which no spec defines"
                problems.append(_problem(resource, message, field))
        graph[address] = {t for t in wanted if t in resources}
    problems += _shared_claims(resources, registry)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        cycle = list(error.args[1])
        field = fields.get((cycle[0], cycle[1]), "metadata.dependsOn")
        message = "dependency cycle: " + " -> ".join(cycle)
        problems.append(_problem(resources[cycle[0]], message, field))
    if problems:
        raise SpecError(problems)
    return graph


def ordered(graph: dict[str, set[str]]) -> list[str]:
    """Addresses with every dependency before its dependents."""
    return list(graphlib.TopologicalSorter(graph).static_order())


def with_dependencies(graph: dict[str, set[str]], targets: Iterable[str]) -> set[str]:
    """The targets and everything they depend on, transitively."""
    found: set[str] = set()
    stack = list(targets)
    while stack:
        address = stack.pop()
        if address not in found:
            found.add(address)
            stack += graph.get(address, ())
    return found


def _shared_claims(resources: dict[str, Resource], registry: Registry) -> list[SpecProblem]:
    """A file or directory that two resources would write (each undoing the other)."""
    owners: dict[str, Resource] = {}
    problems = []
    kinds = _kinds(registry, resources.values())
    claimers = {k: c for k, c in kinds.items() if isinstance(c, Claimer)}
    for resource in resources.values():
        controller = claimers.get(resource.kind)
        if controller is None:
            continue
        for claim, field in controller.claims(resource).items():
            first = owners.setdefault(claim, resource)
            if first is not resource:
                message = f"{first.address} ({first.location}) already writes {claim}"
                problems.append(_problem(resource, message, field))
    return problems


def dependents(graph: dict[str, set[str]], changed: Iterable[str]) -> set[str]:
    """The `changed` addresses and everything that depends on them, transitively."""
    users: dict[str, set[str]] = {}
    for address, needs in graph.items():
        for need in needs:
            users.setdefault(need, set()).add(address)
    return with_dependencies(users, changed)


def _kinds(registry: Registry, resources: Iterable[Resource]) -> dict[str, object]:
    """Kind -> its controller, for the kinds of `resources`: a capability is asked of each
    kind once (an isinstance of a runtime Protocol costs ~20 µs; asked per resource, it was
    a third of the graph's time at 1,000 resources)."""
    return {kind: registry[kind] for kind in {r.kind for r in resources}}


def _problem(resource: Resource, message: str, field: str) -> SpecProblem:
    return SpecProblem(resource.file, _line(resource, field), message, resource.address, field)


def _line(resource: Resource, field: str) -> int:
    """The line of `field`, or of the nearest field around it that has one recorded."""
    while field in resource.lines or _LAST_PART.search(field):
        if field in resource.lines:
            return resource.lines[field]
        field = _LAST_PART.sub("", field)
    return resource.line
