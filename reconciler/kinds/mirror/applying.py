"""Applying one Mirror action: bring one destination to its source, ref by ref."""

from __future__ import annotations

import hashlib
import time

from reconciler.errors import PermanentError
from reconciler.git import ObjectCache, RefOutcome, RefUpdate, Remote, list_refs, push
from reconciler.kinds.base import Action, ActionResult, Context, Outcome, Step
from reconciler.kinds.mirror.model import MirrorSpec
from reconciler.kinds.mirror.observed import filtered
from reconciler.kinds.mirror.observing import source_cache


def apply_destination(spec: MirrorSpec, action: Action, context: Context) -> ActionResult:
    """Create the destination if needed, keep old tips of forced refs, push compare-and-swap."""
    repo = str(action.steps[0]["repo"])
    destination = _destination(spec, repo, action.unit)
    cache = source_cache(spec, repo, context)
    steps = [s for s in action.steps if s["op"] != "init"]
    init = next((s for s in action.steps if s["op"] == "init"), None)
    if init is not None:
        _init_bare(destination, str(init["head"]), context)
    cache.ensure_objects(str(s["to"]) for s in steps if s.get("to"))
    preserved = _preserve_old_tips(cache, destination, steps)
    outcomes = push(context.git, cache.path, destination, [_update(s) for s in steps])
    state = filtered(list_refs(destination, context.redact).refs, spec)
    return _result(action, steps, outcomes, preserved, state, init is not None)


def _destination(spec: MirrorSpec, repo: str, url: str) -> Remote:
    for candidate in spec.destinations:
        remote = candidate.remote(repo)
        if remote.url == url:
            return remote
    raise PermanentError(f"{url} is no longer a destination of this mirror")


def _init_bare(destination: Remote, head: str, context: Context) -> None:
    if not destination.is_local:
        raise PermanentError(
            f"{destination}: does not exist and only local destinations are created"
        )
    if destination.exists():
        return  # created by an earlier, interrupted run
    path = destination.local_path
    path.parent.mkdir(parents=True, exist_ok=True)
    branch = head.removeprefix("refs/heads/")
    context.git.run(["init", "--quiet", "--bare", f"--initial-branch={branch}", "--", str(path)])


def _update(step: Step) -> RefUpdate:
    op = step["op"]
    return RefUpdate(
        ref=str(step["ref"]),
        new=None if op == "delete" else str(step["to"]),
        expected=step.get("from"),
    )


def _preserve_old_tips(cache: ObjectCache, destination: Remote, steps: list[Step]) -> list[Step]:
    """Keep the objects of every tip a force-update or delete replaces, under a cache ref."""
    label = hashlib.sha256(destination.url.encode()).hexdigest()[:12] + f"/{int(time.time())}"
    kept = []
    for step in steps:
        if step["op"] in ("force-update", "delete"):
            keep = cache.preserve(destination, str(step["ref"]), str(step["from"]), label)
            kept.append(
                {"ref": step["ref"], "sha": step["from"], "kept_as": keep, "cache": str(cache.path)}
            )
    return kept


def _result(
    action: Action,
    steps: list[Step],
    outcomes: list[RefOutcome],
    preserved: list[Step],
    state: dict[str, str],
    created: bool,
) -> ActionResult:
    by_ref = {o.ref: o for o in outcomes}
    moved = [
        {
            "op": s["op"],
            "ref": s["ref"],
            "from": s.get("from"),
            "to": s.get("to"),
            "ok": by_ref[s["ref"]].ok,
            "result": by_ref[s["ref"]].summary,
        }
        for s in steps
        if s["ref"] in by_ref
    ]
    failed = [m for m in moved if not m["ok"]]
    history = {
        "unit": action.unit,
        "summary": _summary(moved, created),
        "created": created,
        "moved": moved,
        "preserved": preserved,
    }
    if not failed:
        return ActionResult("done", f"{len(moved)} refs updated", state, history)
    detail = "; ".join(f"{m['ref']}: {m['result']}" for m in failed)
    outcome: Outcome = "partial" if len(failed) < len(moved) else "failed"
    return ActionResult(
        outcome, f"{len(failed)} of {len(moved)} refs failed: {detail}", state, history
    )


def _summary(moved: list[Step], created: bool) -> str:
    """One line for `history`: what moved where."""
    parts = [
        f"{m['op']} {m['ref']} {str(m.get('to') or '')[:7]}".strip()
        + ("" if m["ok"] else f" (failed: {m['result']})")
        for m in moved
    ]
    return "; ".join((["created repository"] if created else []) + parts) or "-"
