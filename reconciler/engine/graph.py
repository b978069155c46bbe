"""The dependency graph of resources: order, dangling references and cycles."""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable

from reconciler.errors import SpecError, SpecProblem
from reconciler.kinds.base import Claimer, Referrer
from reconciler.kinds.registry import Registry
from reconciler.specs import Resource, SpecSet

_LAST_PART = re.compile(r"(\.[^.\[]+|\[[^\]]*\])$")  # `.url` or `[1]` at the end of a field


def dependencies(specs: SpecSet, registry: Registry) -> dict[str, set[str]]:
    """Address -> addresses it depends on; raises SpecError on dangling references and cycles."""
    resources = specs.by_address()
    graph: dict[str, set[str]] = {}
    problems: list[SpecProblem] = []
    fields: dict[tuple[str, str], str] = {}
    for address, resource in resources.items():
        wanted = dict.fromkeys(resource.depends_on, "metadata.dependsOn")
        controller = registry[resource.kind]
        if isinstance(controller, Referrer):
            wanted.update(controller.references(resource))
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
    for resource in resources.values():
        controller = registry[resource.kind]
        if not isinstance(controller, Claimer):
            continue
        for claim, field in controller.claims(resource).items():
            first = owners.setdefault(claim, resource)
            if first is not resource:
                message = f"{first.address} ({first.location}) already writes {claim}"
                problems.append(_problem(resource, message, field))
    return problems


def _problem(resource: Resource, message: str, field: str) -> SpecProblem:
    return SpecProblem(resource.file, _line(resource, field), message, resource.address, field)


def _line(resource: Resource, field: str) -> int:
    """The line of `field`, or of the nearest field around it that has one recorded."""
    while field in resource.lines or _LAST_PART.search(field):
        if field in resource.lines:
            return resource.lines[field]
        field = _LAST_PART.sub("", field)
    return resource.line
