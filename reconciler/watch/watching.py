"""Watch mode: reconcile on spec changes, new spec commits, webhooks and every interval;
run health policies on their intervals and the remediations they call for.

Level-based: whatever woke it, a reconcile loads the specs and plans from what it observes.
One loop thread does all the work, so there is never more than one apply in this process
(and the store's lock keeps other processes out). A stop request (SIGINT/SIGTERM) lets the
running apply finish, then the loop ends and the lock is already released.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler.engine.applying import ActionReport, Listener, locked_apply
from reconciler.engine.graph import dependencies, dependents
from reconciler.engine.planning import hold_drift, load, make_plan
from reconciler.engine.plans import Plan
from reconciler.engine.sources import GitSpecSource, shown
from reconciler.engine.status import WATCH_EVENTS
from reconciler.engine.workspace import Workspace
from reconciler.errors import LockHeld, ReconcilerError, SpecError
from reconciler.health.healing import heal, next_due
from reconciler.health.kind import policy_spec
from reconciler.health.policies import check_health, policies
from reconciler.specs import Resource, SpecSet
from reconciler.specs.filecache import FileCache
from reconciler.specs.loading import spec_files
from reconciler.store import now
from reconciler.store.retention import prune, prune_locked
from reconciler.watch.listener import HookServer
from reconciler.watch.metrics import WatchMetrics
from reconciler.watch.triggers import CommitPoller, Triggers, watch_directory

Log = Callable[[dict[str, Any]], None]
_SETTLE_ATTEMPTS = 20  # loads of a specs directory that keeps changing before one is used


@dataclass(frozen=True)
class WatchOptions:
    """`watch` settings (seconds)."""

    interval: float = 300.0
    poll: float = 30.0
    listen: tuple[str, int] | None = ("127.0.0.1", 8765)
    secret: str | None = None
    once: bool = False
    debounce_ms: int = 50
    lock_timeout: float = 10.0
    max_backoff: float = 300.0
    forget_after: float = 2.0  # a spec gone from a specs directory: confirmed this much later
    keep: int = 1000  # revisions `state prune` keeps (0: all)
    keep_for: float = 90 * 86400.0  # and none older than this (0: no age limit)
    prune_every: float = 3600.0


class Watcher:
    """The reconcile loop and its trigger sources."""

    def __init__(self, workspace: Workspace, options: WatchOptions, log: Log) -> None:
        self.workspace = workspace
        self.options = options
        self.log = log
        self.triggers = Triggers()
        self.metrics = WatchMetrics(workspace.store, workspace.registry)
        self.specs: SpecSet | None = None  # the last specs that loaded
        self.files = FileCache()  # what each spec file loaded to (unchanged ones: no parse)
        self.failures = 0
        self.checked: dict[str, float] = {}  # policy -> monotonic time of its last checks
        self.last: dict[str, Any] = {"reconcile": None, "outcome": None, "error": None}
        self.unconfirmed: set[str] = set()  # gone from the specs, not yet on a second load
        source = GitSpecSource.parse(workspace.specs)
        self.poller = CommitPoller(source, workspace.git) if source else None

    def stop(self) -> None:
        """Finish the running work and return (signal-safe)."""
        self.triggers.stop()

    def once(self) -> bool:
        """One full cycle: reconcile, every policy's checks, the remediations due. True: ok."""
        ok = self.reconcile({"once"})
        return self.health(force=True) and ok

    def run(self) -> None:
        """Serve until stopped."""
        server = self._serve()
        if self.poller is None:
            watch_directory(Path(self.workspace.specs), self.triggers, self.options.debounce_ms)
        self.log(
            {
                "event": "watching",
                "specs": shown(self.workspace.specs),
                "listen": server.address if server else None,
                "retention": self._retention(),
            }
        )
        next_reconcile = time.monotonic()
        next_poll = time.monotonic() + self.options.poll
        next_prune = time.monotonic()  # after the first reconcile, then every prune_every
        reasons = {"start"}
        try:
            while not self.triggers.stopping.is_set():
                now = time.monotonic()
                if now >= next_reconcile:
                    reasons.add("interval")
                if self.poller is not None and now >= next_poll:
                    next_poll = now + self.options.poll
                    if self.poller.changed():
                        reasons.add("commit")
                if reasons:
                    ok = self.reconcile(reasons)
                    next_reconcile = time.monotonic() + self._delay(ok)
                if not self.triggers.stopping.is_set():
                    self.health(force=False)
                if not self.triggers.stopping.is_set() and time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + self.options.prune_every
                    self.prune()
                wake = min(next_reconcile, next_poll if self.poller else next_reconcile)
                reasons = self.triggers.wait(min(wake - time.monotonic(), self._health_wait()))
        finally:
            if server is not None:
                server.close()
            self.log({"event": "stopped"})

    def _retention(self) -> str:
        """What the hourly prune keeps, as the log says it."""
        keep, days = self.options.keep, self.options.keep_for / 86400
        parts = [f"{keep} revisions"] if keep else []
        parts += [f"{days:g} days"] if self.options.keep_for else []
        return ", ".join(parts) or "everything (no pruning)"

    def prune(self) -> None:
        """`state prune` with the watch's retention, under the lock; logged. A count without
        the lock first, so a store with nothing to remove never has its lock taken."""
        keep = self.options.keep or None
        age = timedelta(seconds=self.options.keep_for) if self.options.keep_for else None
        if keep is None and age is None:
            return
        store = self.workspace.store
        try:
            pruned = prune(store, keep, age, dry_run=True)
            if pruned.total:
                pruned, _note = prune_locked(
                    store, keep, age, lock_timeout=self.options.lock_timeout, command="watch"
                )
        except ReconcilerError as error:  # the lock held (LockHeld), a store that fails
            self.log({"event": "prune", "outcome": "error", "error": str(error)})
            return
        self.log(
            {
                "event": "prune",
                "outcome": "done",
                "keep": self._retention(),
                "removed": {table: n for table, n in pruned.counts.items() if n},
                "bytes": [pruned.bytes_before, pruned.bytes_after],
            }
        )

    def _serve(self) -> HookServer | None:
        if self.options.listen is None:
            return None
        server = HookServer(
            self.options.listen,
            self.triggers,
            self.metrics,
            self.options.secret,
            lambda: {"status": "ok", **self.last},
        )
        server.start()
        return server

    def _delay(self, ok: bool) -> float:
        """Until the next reconcile: the interval, or a backoff after failures."""
        self.failures = 0 if ok else self.failures + 1
        if ok:
            return self.options.interval
        backoff = min(self.options.max_backoff, 2.0 * 2.0 ** (self.failures - 1))
        return min(self.options.interval, backoff)

    def _plan(self, specs: SpecSet, targets: list[str] | None) -> tuple[Plan, SpecSet]:
        """The plan (of `targets` and their dependencies only, when given), with drift
        corrected, reported or left alone per `driftPolicy`, and without forgetting a
        resource whose spec has not yet been missing on two loads."""
        made = make_plan(self.workspace, specs, targets)
        plan, warnings = hold_drift(self.workspace, made, specs)
        held = [c for c in plan.changes if c.action == "delete" and c.address in self.unconfirmed]
        if held:
            plan = replace(plan, changes=tuple(c for c in plan.changes if c not in held))
            self.triggers.add("confirm")  # the next reconcile confirms it (or not)
        for warning in warnings:
            self.log({"event": "drift", "level": "warning", "message": warning})
        return plan, specs

    def reconcile(self, reasons: set[str]) -> bool:
        """Load, plan and apply everything; True when it all went well."""
        started = time.monotonic()
        trigger = ",".join(sorted(reasons))
        # A spec file saved after a reconcile that went well: only what the save changed
        # is reconciled. Anything else (start, the interval, a commit, a webhook, a
        # confirmation, a retry after a failure) reconciles everything, every file parsed
        # again: drift, and whatever a spec reads from elsewhere, is theirs to see.
        incremental = reasons == {"file"} and self.last["outcome"] == "success"
        previous = self.specs if incremental and self.poller is None else None
        if previous is None:
            self.files.clear()
        try:
            specs = self._load()
            targets = None if previous is None else self._changed(previous, specs)
        except SpecError as error:
            return self._failed(
                trigger,
                started,
                "invalid",
                [str(p) for p in error.problems] or [str(error)],
            )
        self.specs = specs
        if self.poller is not None:
            self.poller.seen(specs.commit)
        if targets == []:  # saved as it was: nothing to reconcile
            seconds = self._finish("success", started)
            self.log(
                {
                    "event": "reconcile",
                    "trigger": trigger,
                    "outcome": "success",
                    "commit": specs.commit,
                    "changes": {},
                    "actions": 0,
                    "revision": None,
                    "blocked": [],
                    "seconds": seconds,
                }
            )
            return True
        try:
            plan, report = locked_apply(
                self.workspace,
                lambda: self._plan(specs, targets),
                lambda _plan: True,
                self.options.lock_timeout,
                _ActionLog(self.log, self.metrics),
                trigger="watch",
                should_stop=self.triggers.stopping.is_set,
            )
        except LockHeld as error:
            return self._failed(trigger, started, "locked", [str(error)])
        except ReconcilerError as error:
            return self._failed(trigger, started, "error", [str(error)])
        ok = report is not None and report.ok
        outcome = "success" if ok else "failed"
        seconds = self._finish(outcome, started)
        self.log(
            {
                "event": "reconcile",
                "trigger": trigger,
                "outcome": outcome,
                "commit": specs.commit,
                "changes": plan.summary(),
                "actions": len(report.actions) if report else 0,
                "revision": report.revision if report else None,
                "blocked": report.blocked if report else [],
                "seconds": seconds,
            }
        )
        return ok

    def _load(self) -> SpecSet:
        """The specs, never half-written: a specs directory is read until its files read the
        same a debounce after a load, and when a resource the store knows is missing, the
        directory is read again `forget_after` seconds later; only a resource missing from
        both loads may be forgotten (a spec saved in two writes is not read between them)."""
        if self.poller is not None:  # a commit is written all at once
            return load(self.workspace)
        specs = self._settled()
        known = {r["address"] for r in self.workspace.store.query("SELECT address FROM resources")}
        missing = known - set(specs.by_address())
        self.unconfirmed = missing
        if missing and not self.triggers.stopping.wait(self.options.forget_after):
            specs = self._settled()
            self.unconfirmed = (known - set(specs.by_address())) - missing
        return specs

    def _settled(self) -> SpecSet:
        """Load the specs directory until its files did not change during the load and a
        debounce after it (a load that failed on files still being written is tried again)."""
        root = Path(self.workspace.specs)
        settle = self.options.debounce_ms / 1000
        for _attempt in range(_SETTLE_ATTEMPTS):
            try:
                specs: SpecSet | SpecError = load(self.workspace, self.files)
            except SpecError as error:
                specs = error
            time.sleep(settle)
            # Each file as it was read (the cache's key, taken then) is what it is now.
            if self.files.same(spec_files(root)):
                break
        if isinstance(specs, SpecError):
            raise specs
        return specs

    def _changed(self, before: SpecSet, after: SpecSet) -> list[str]:
        """The addresses a file save touched: resources added, edited or removed since
        `before` (a removed one only when the store knows it), and every resource depending
        on one of them, transitively. An unchanged file's resources are the very objects
        of the last load (see FileCache), so only edited files' resources are compared."""
        old, new = before.by_address(), after.by_address()
        touched = {a for a, r in new.items() if a not in old or _edited(old[a], r)}
        store = self.workspace.store
        touched |= {a for a in old if a not in new and store.resource(a) is not None}
        return sorted(dependents(dependencies(after, self.workspace.registry), touched))

    def _failed(self, trigger: str, started: float, outcome: str, problems: list[str]) -> bool:
        message = self.workspace.redact("; ".join(problems))
        self.workspace.store.add_event("error", f"{WATCH_EVENTS} {outcome}: {message}")
        seconds = self._finish(outcome, started, message)
        self.log(
            {
                "event": "reconcile",
                "trigger": trigger,
                "outcome": outcome,
                "error": message,
                "seconds": seconds,
            }
        )
        return False

    def _finish(self, outcome: str, started: float, error: str | None = None) -> float:
        seconds = round(time.monotonic() - started, 3)
        self.metrics.reconciles.labels(outcome).inc()
        self.metrics.duration.observe(seconds)
        if outcome == "success":
            self.metrics.last_success.set(time.time())
        self.last = {"reconcile": now(), "outcome": outcome, "error": error}
        return seconds

    def health(self, force: bool) -> bool:
        """Run the policies that are due (all with `force`) and heal; True when all healthy."""
        if self.specs is None:
            return False
        due = [
            p
            for p in policies(self.specs)
            if force or self._due(p.name, policy_spec(p).interval.total_seconds())
        ]
        incident_due = next_due(self.workspace)
        if not due and not (incident_due and incident_due <= datetime.now(UTC)):
            return True
        due = due or policies(self.specs)
        for policy in due:
            self.checked[policy.name] = time.monotonic()
        try:
            report = check_health(self.workspace, self.specs, due)
            actions = heal(
                self.workspace, self.specs, report, lock_timeout=self.options.lock_timeout
            )
        except ReconcilerError as error:
            self.log(
                {"event": "health", "outcome": "error", "error": self.workspace.redact(str(error))}
            )
            return False
        self.log(
            {
                "event": "health",
                "status": report.status,
                "resources": {r.address: r.status for r in report.resources},
            }
        )
        for action in actions:
            self.log({"event": "remediation", **action.to_json()})
        return report.status in ("Healthy", "Progressing", "Suspended")

    def _due(self, policy: str, interval: float) -> bool:
        last = self.checked.get(policy)
        return last is None or time.monotonic() - last >= interval

    def _health_wait(self) -> float:
        """Seconds until a policy or an incident's backoff is due (at most 60, at least 0.5)."""
        if self.specs is None:
            return 60.0
        waits = [60.0]
        for policy in policies(self.specs):
            last = self.checked.get(policy.name)
            interval = policy_spec(policy).interval.total_seconds()
            waits.append(0.0 if last is None else last + interval - time.monotonic())
        due = next_due(self.workspace)
        if due is not None:
            waits.append((due - datetime.now(UTC)).total_seconds())
        return max(0.5, min(waits))


class _ActionLog(Listener):
    """One log line and one counter increment per action."""

    def __init__(self, log: Log, metrics: WatchMetrics) -> None:
        self.log = log
        self.metrics = metrics

    def finished(self, report: ActionReport) -> None:
        self.metrics.actions.labels(report.outcome).inc()
        self.log(
            {
                "event": "action",
                "address": report.address,
                "unit": report.unit,
                "outcome": report.outcome,
                "attempts": report.attempts,
                "message": report.message,
            }
        )


def _edited(before: Resource, after: Resource) -> bool:
    """Whether a resource's desired state changed (an unchanged file gives the same object)."""
    return before is not after and before.digest != after.digest
