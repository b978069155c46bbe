"""Applying one Mirror action: bring one destination to its source, ref by ref."""

from __future__ import annotations

import hashlib
import time

from reconciler.errors import GitError, PermanentError, TemporaryError
from reconciler.git import ObjectCache, RefOutcome, RefUpdate, Remote, list_refs, push
from reconciler.kinds.base import Action, ActionResult, Context, Outcome, Step
from reconciler.kinds.mirror.model import MirrorSpec
from reconciler.kinds.mirror.observed import filtered
from reconciler.kinds.mirror.observing import source_cache

SHOWN_FAILURES = 3  # refs named in a failed action's message
MESSAGE_CHARS = 160  # of each ref's result in that message
_REPLACING = ("force-update", "delete")  # ops whose old tip is preserved


def apply_destination(spec: MirrorSpec, action: Action, context: Context) -> ActionResult:
    """Create the destination if needed, keep old tips of forced refs, push compare-and-swap.

    Level-based, so that a retry never sends again what an earlier attempt landed: the
    destination is listed first and only refs not yet where the plan wants them are pushed;
    and every outcome is checked against a listing after the push, so a push git reports
    failed (a connection lost while the server stored the refs) is reported as what it did.
    """
    repo = str(action.steps[0]["repo"])
    destination = _destination(spec, repo, action.unit)
    cache = source_cache(spec, repo, context)
    steps = [s for s in action.steps if s["op"] != "init"]
    init = next((s for s in action.steps if s["op"] == "init"), None)
    if init is not None:
        _init_bare(destination, str(init["head"]), context)
    before = filtered(list_refs(destination, context.redact).refs, spec)
    pending = [s for s in steps if not _landed(s, before)]
    landed = [s for s in steps if _landed(s, before)]
    cache.ensure_objects(str(s["to"]) for s in pending if s.get("to"))
    # A tip that an earlier attempt replaced is kept again only if the cache holds it (the
    # destination no longer does).
    replaced = [s for s in landed if s["op"] in _REPLACING]
    kept = pending + [s for s in replaced if not cache.missing([str(s["from"])])]
    preserved = _preserve_old_tips(cache, destination, kept)
    failure: GitError | TemporaryError | None = None
    try:
        outcomes = push(context.git, cache.path, destination, [_update(s) for s in pending])
    except (GitError, TemporaryError) as error:  # the refs may have landed all the same: look
        outcomes, failure = [], error
    state = filtered(list_refs(destination, context.redact).refs, spec) if pending else before
    checked = _checked(steps, pending, outcomes, state)
    if failure is not None and not all(o.ok for o in checked):
        raise failure
    return _result(action, steps, checked, preserved, state, init is not None)


def _landed(step: Step, refs: dict[str, str]) -> bool:
    """True when the destination's ref is already where `step` takes it."""
    if step["op"] == "delete":
        return str(step["ref"]) not in refs
    return refs.get(str(step["ref"])) == step.get("to")


def _checked(
    steps: list[Step], pending: list[Step], outcomes: list[RefOutcome], state: dict[str, str]
) -> list[RefOutcome]:
    """One outcome per step, as the destination's refs after the push show it."""
    said = {o.ref: o for o in outcomes}
    sent = {str(s["ref"]) for s in pending}
    checked = []
    for step in steps:
        ref = str(step["ref"])
        git = said.get(ref)
        landed = _landed(step, state)
        if ref not in sent:
            summary = "already there (an earlier attempt landed it)"
        elif git is None:
            summary = "landed (git reported nothing)" if landed else "not pushed"
        elif git.ok == landed:
            summary = git.summary
        elif landed:
            summary = f"landed (git reported: {git.summary})"
        else:
            now = state.get(ref, "absent")[:12]
            summary = f"git reported {git.summary}, but the destination has {now}"
        checked.append(RefOutcome(ref, landed, summary))
    return checked


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
        if step["op"] in _REPLACING:
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
    outcome: Outcome = "partial" if len(failed) < len(moved) else "failed"
    return ActionResult(outcome, _failure_message(failed, len(moved)), state, history)


def _failure_message(failed: list[Step], total: int) -> str:
    """One bounded line naming the first failed refs (each ref's full result is in history)."""
    named = "; ".join(f"{m['ref']}: {_line(str(m['result']))}" for m in failed[:SHOWN_FAILURES])
    more = len(failed) - SHOWN_FAILURES
    rest = f"; and {more} more (see `reconciler history`)" if more > 0 else ""
    return f"{len(failed)} of {total} refs failed: {named}{rest}"


def _line(text: str) -> str:
    """`text` on one line of at most MESSAGE_CHARS characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MESSAGE_CHARS else flat[: MESSAGE_CHARS - 1] + "…"


def _summary(moved: list[Step], created: bool) -> str:
    """One line for `history`: what moved where."""
    parts = [
        f"{m['op']} {m['ref']} {str(m.get('to') or '')[:7]}".strip()
        + ("" if m["ok"] else f" (failed: {m['result']})")
        for m in moved
    ]
    return "; ".join((["created repository"] if created else []) + parts) or "-"
