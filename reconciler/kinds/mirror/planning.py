"""Pure planning of a Mirror: observed ref maps in, steps out. No I/O here.

Per destination and ref: create, fast-forward, force-update (only with conflictStrategy
force), delete (only with prune), blocked (diverged under fail), skip (diverged under skip).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from typing import Any

from reconciler.git.refs import short
from reconciler.kinds.base import Action, ResourcePlan, Step
from reconciler.kinds.base.steps import shown
from reconciler.kinds.mirror.model import REPO_PLACEHOLDER, MirrorSpec, repo_name_problem
from reconciler.kinds.mirror.observed import DestinationObserved, MirrorObserved, RepoObserved
from reconciler.store import ResourceRecord

APPLYING_OPS = ("init", "create", "fast-forward", "force-update", "delete")


def plan_mirror(
    spec: MirrorSpec, observed: MirrorObserved, last_applied: ResourceRecord | None
) -> ResourcePlan:
    """The resource-level verdict: actions per destination, and the notes that explain the rest."""
    if observed.error:
        note = {"op": "blocked", "unit": spec.source.url, "reason": observed.error}
        return ResourcePlan("blocked", observed.error, notes=(note,))
    actions: list[Action] = []
    notes: list[Step] = [
        *_unreadable_sources(observed),
        *_left_out(spec, observed),
        *_vanished(spec, observed, last_applied),
    ]
    known: dict[str, Any] = {}  # destinations already in sync: remembered like pushed ones
    for repo in observed.repos:
        for destination in repo.destinations:
            steps = plan_destination(spec, repo, destination)
            applying = tuple(s for s in steps if s["op"] in APPLYING_OPS)
            if applying:
                actions.append(Action(destination.url, applying))
            elif destination.exists and not destination.error and not repo.error:
                known[destination.url] = destination.refs
            notes += [s for s in steps if s["op"] not in APPLYING_OPS]
    return replace(_verdict(observed, actions, notes, last_applied), known=known)


def _unreadable_sources(observed: MirrorObserved) -> list[Step]:
    """A source that cannot be listed (missing, renamed, unreachable) blocks its repository:
    its destinations are not observed, and nothing about them is "in sync"."""
    return [
        {
            "op": "blocked",
            "unit": repo.source,
            "repo": repo.repo,
            "reason": f"source cannot be read: {repo.error}; its destinations are left as they are",
        }
        for repo in observed.repos
        if repo.error
    ]


def _vanished(
    spec: MirrorSpec, observed: MirrorObserved, last_applied: ResourceRecord | None
) -> list[Step]:
    """Repositories this mirror applied to before that `repos: ["*"]` no longer finds at the
    source: reported, never silently dropped (their destinations are kept, not pruned)."""
    if spec.repos != ["*"]:
        return []
    seen = {repo.repo for repo in observed.repos} | set(observed.left_out)
    units = last_applied.state if last_applied else {}
    known = {name for unit in units for name in _repos_of(spec, unit)}
    if not seen and not known:  # an empty (or emptied) organisation mirrors nothing at all
        reason = f"no repository found at the source {spec.source.url}"
        return [{"op": "blocked", "unit": spec.source.url, "reason": reason}]
    notes: list[Step] = []
    for name in sorted(known - seen):
        reason = (
            f"repository {name} is missing at the source (it was mirrored before); "
            "its destinations are kept as they are"
        )
        note: Step = {"op": "blocked", "unit": spec.source.url, "reason": reason}
        if not repo_name_problem(name):  # else mirrored by an older version: no step names it
            note |= {"unit": spec.source.remote(name).url, "repo": name}
        notes.append(note)
    return notes


def _left_out(spec: MirrorSpec, observed: MirrorObserved) -> list[Step]:
    """Repositories discovery found but will not mirror: a name that cannot fill `{repo}`
    (never handed to git). Blocked: the spec asks for every repository."""
    return [
        {
            "op": "blocked",
            "unit": spec.source.url,
            "reason": f"{shown(spec.source.remote(name).url, 200)} left out: "
            f'{repo_name_problem(name)}; rename it, or list the repositories instead of "*"',
        }
        for name in observed.left_out
    ]


def _repos_of(spec: MirrorSpec, unit: str) -> list[str]:
    """The repository names whose destination URL is `unit` (a unit of an earlier apply):
    any name, so one that is now left out is still reported when it vanishes."""
    names = []
    for destination in spec.destinations:
        pattern = re.escape(destination.url).replace(
            re.escape(REPO_PLACEHOLDER), r"(?P<repo>[^/]+)"
        )
        match = re.fullmatch(pattern, unit)
        if match:
            names.append(match["repo"])
    return names


def plan_destination(
    spec: MirrorSpec, repo: RepoObserved, destination: DestinationObserved
) -> list[Step]:
    """Steps that make one destination match its source, inside the spec's filters."""
    base = {"unit": destination.url, "repo": repo.repo}
    if repo.error:
        return [{**base, "op": "blocked", "reason": repo.error}]
    if destination.error:
        return [{**base, "op": "blocked", "reason": destination.error}]
    steps: list[Step] = []
    if not destination.exists:
        head = _initial_head(repo)
        steps.append(
            {
                **base,
                "op": "init",
                "head": head,
                "reason": "no repository at the destination: create a bare repository",
            }
        )
    for ref in sorted(set(repo.refs) | set(destination.refs)):
        step = plan_ref(spec, ref, repo.refs.get(ref), destination)
        if step is not None:
            steps.append({**base, "ref": ref, **step})
    return steps


def plan_ref(
    spec: MirrorSpec, ref: str, new: str | None, destination: DestinationObserved
) -> Step | None:
    """The step for one ref (None when it needs nothing)."""
    old = destination.refs.get(ref)
    if old == new:
        return None
    if old is None:
        return {"op": "create", "to": new, "reason": f"new at the source ({short(new)})"}
    if new is None:
        if spec.prune:
            return {
                "op": "delete",
                "from": old,
                "reason": f"gone from the source; prune is on (was {short(old)})",
            }
        return None  # kept: without prune a destination ref the source dropped stays
    if destination.fast_forward.get(ref):
        return {
            "op": "fast-forward",
            "from": old,
            "to": new,
            "reason": f"behind the source: {short(old)}..{short(new)}",
        }
    what = "tag moved at the source" if ref.startswith("refs/tags/") else "diverged"
    detail = f"{what}: destination {short(old)} is not contained in the source {short(new)}"
    if spec.conflictStrategy == "force":
        return {
            "op": "force-update",
            "from": old,
            "to": new,
            "reason": f"{detail}; conflictStrategy force overwrites it (old tip kept)",
        }
    if spec.conflictStrategy == "skip":
        return {
            "op": "skip",
            "from": old,
            "to": new,
            "reason": f"{detail}; conflictStrategy skip leaves it",
        }
    return {
        "op": "blocked",
        "from": old,
        "to": new,
        "reason": f"{detail}; conflictStrategy fail leaves it untouched",
    }


def _initial_head(repo: RepoObserved) -> str:
    if repo.head and repo.head in repo.refs:
        return repo.head
    branches = sorted(r for r in repo.refs if r.startswith("refs/heads/"))
    return branches[0] if branches else "refs/heads/main"


def _verdict(
    observed: MirrorObserved,
    actions: list[Action],
    notes: list[Step],
    last_applied: ResourceRecord | None,
) -> ResourcePlan:
    destinations = sum(len(r.destinations) for r in observed.repos)
    blocked = [n for n in notes if n["op"] == "blocked"]
    if actions:
        ops = Counter(s["op"] for a in actions for s in a.steps)
        counted = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
        reason = f"{counted} on {len(actions)} of {destinations} destinations"
        if blocked:
            reason += f"; {len(blocked)} blocked"
        return ResourcePlan(
            "create" if last_applied is None else "update", reason, tuple(actions), tuple(notes)
        )
    if blocked:
        return ResourcePlan(
            "blocked", f"{len(blocked)} blocked: {blocked[0]['reason']}", notes=tuple(notes)
        )
    repos = len(observed.repos)
    if notes:  # only skips are left: named, since those refs do differ (status: OutOfSync)
        return ResourcePlan("noop", _skipped(notes, destinations, repos), notes=tuple(notes))
    return ResourcePlan(
        "noop", f"{destinations} destinations of {repos} repositories match the source"
    )


def _skipped(notes: list[Step], destinations: int, repos: int, shown: int = 5) -> str:
    """The verdict when the only differences are refs `conflictStrategy: skip` leaves."""
    by_unit: dict[str, list[str]] = {}
    for note in notes[:shown]:  # each destination named once: status shows one short line
        by_unit.setdefault(str(note["unit"]), []).append(str(note["ref"]))
    named = "; ".join(f"{', '.join(refs)} in {unit}" for unit, refs in by_unit.items())
    more = f" and {len(notes) - shown} more" if len(notes) > shown else ""
    return (
        f"{len(notes)} diverged refs skipped (conflictStrategy skip leaves them): {named}{more}; "
        f"everything else on the {destinations} destinations of {repos} repositories "
        "matches the source"
    )
