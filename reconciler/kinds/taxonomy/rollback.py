"""`rollback Taxonomy/NAME --to V`: re-apply stored version V to every target through the
same three-way merge (so downstream edits made since are kept), then the engine pins it."""

from __future__ import annotations

from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.kinds.base import ActionResult, Context, Outcome
from reconciler.kinds.taxonomy.applying import commit_message, publish_file
from reconciler.kinds.taxonomy.documents import DocumentError, from_content
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observing import observe_target
from reconciler.kinds.taxonomy.planning import merge_target
from reconciler.kinds.taxonomy.terms import Taxonomy
from reconciler.specs import Resource
from reconciler.store import ResourceRecord
from reconciler.store.contents import version_content


def rollback_taxonomy(
    resource: Resource,
    spec: TaxonomySpec,
    record: ResourceRecord,
    to: str | None,
    context: Context,
) -> ActionResult:
    """Write version `to` (default: the one before the current) to every target."""
    number = _version(resource.address, record, to, context)
    content = version_content(context.store, resource.address, number)
    assert content is not None
    ours = from_content(content)
    state: dict[str, Any] = {}
    lines, failed = [], []
    for target in spec.targets:
        try:
            state[target.unit], line = _rollback_target(
                resource, spec, record, target, ours, number, context
            )
            lines.append(line)
        except ReconcilerError as error:
            failed.append(f"{target.unit}: {context.redact(str(error))}")
    outcome: Outcome = "done" if not failed else ("partial" if state else "failed")
    summary = f"rolled back to v{number}: " + "; ".join(lines + [f"failed {f}" for f in failed])
    history = {"summary": summary, "version": number, "failed": failed}
    message = summary if not failed else f"{len(failed)} targets failed: " + "; ".join(failed)
    pin = f"version {number}" if outcome == "done" else None
    return ActionResult(outcome, message, state, history, pin)


def _rollback_target(
    resource: Resource,
    spec: TaxonomySpec,
    record: ResourceRecord,
    target: TargetSpec,
    ours: Taxonomy,
    number: int,
    context: Context,
) -> tuple[dict[str, Any], str]:
    unit_state = record.state.get(target.unit)
    base = unit_state.get("version") if isinstance(unit_state, dict) else None
    observed = observe_target(resource.address, target, base, context)
    if observed.error:
        raise ReconcilerError(observed.error)
    try:
        merged = merge_target(resource.name, spec, target, observed, ours=ours)
    except DocumentError as error:
        raise ReconcilerError(f"cannot parse {target.path}: {error}") from None
    if merged.result.unresolved:
        conflicts = "; ".join(f"{c.term}: {c}" for c in merged.result.unresolved)
        raise ReconcilerError(f"conflicts under conflictStrategy fail: {conflicts}")
    if merged.text == observed.text:
        return {"version": number, "commit": observed.tip}, f"{target.path} already at v{number}"
    message = commit_message(resource.name, f"roll back to version {number}", merged, context)
    commit = publish_file(target, observed.tip, merged.text, message, context)
    return {"version": number, "commit": commit}, f"{target.path} -> {commit[:7]}"


def _version(address: str, record: ResourceRecord, to: str | None, context: Context) -> int:
    known = sorted(int(v["version"]) for v in context.store.versions(address))
    if not known:
        raise ReconcilerError(f"{address} has no recorded versions yet")
    if to is None:
        applied = [s.get("version") for s in record.state.values() if isinstance(s, dict)]
        current = max((v for v in applied if isinstance(v, int)), default=known[-1])
        earlier = [v for v in known if v < current]
        if not earlier:
            raise ReconcilerError(f"{address}: no version before v{current} to roll back to")
        return earlier[-1]
    text = to.strip().lower().removeprefix("v")
    if not text.isdigit() or int(text) not in known:
        raise ReconcilerError(
            f"{address}: no version {to!r}; recorded versions are {', '.join(map(str, known))}"
        )
    return int(text)
