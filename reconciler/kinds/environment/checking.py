"""What an Environment answers health: its `deployment` check (the spec's `verify` checks
run against the current release now) and the deployment facts of its stored record."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from reconciler.kinds.base import CheckResult, Context, Planned, RecordFacts
from reconciler.kinds.environment.hooks import run_check
from reconciler.kinds.environment.manifests import read_manifest
from reconciler.kinds.environment.model import EnvironmentSpec
from reconciler.kinds.environment.releases import Layout
from reconciler.kinds.environment.services import Services
from reconciler.specs import Resource
from reconciler.store import ResourceRecord


def deployment_check(resource: Resource, _planned: Planned, context: Context) -> CheckResult:
    """An Environment's `verify` checks, run against its current release now."""
    spec = resource.spec
    assert isinstance(spec, EnvironmentSpec)
    current = Path(spec.target.path) / "current"
    problems = Layout(Path(spec.target.path)).refusals()
    if problems:  # never run checks in a directory outside the environment
        return CheckResult("deployment", "Degraded", context.redact("; ".join(problems)))
    if not current.exists():  # final at once: nothing to wait for
        return CheckResult("deployment", "Missing", f"no current release at {current}")
    release = Path(os.path.realpath(current))
    manifest = read_manifest(Layout(Path(spec.target.path)), release.name) or {}
    env = {  # as during the deploy (the checks also get their `env:`, nothing else)
        "RECONCILER_ENV": resource.name,
        "RECONCILER_RELEASE": release.name,
        "RECONCILER_RELEASE_DIR": str(release),
        "RECONCILER_REF": spec.source.ref,
        "RECONCILER_SHA": str(manifest.get("sha") or ""),
    }
    # A service that exits while the checks retry ends their wait.
    services = Services.of(release, origin="running for the release")
    for check in spec.verify:
        outcome = run_check(check, release, env, services.exited)
        if not outcome.ok:
            message = context.redact(f"release {release.name}: {outcome.detail}")
            return CheckResult("deployment", "Degraded", message)
    return CheckResult("deployment", "Healthy", f"release {release.name} passes its checks")


def deployment_facts(record: ResourceRecord) -> RecordFacts:
    """The last release's time, the commit running now, and the commit a rollback would
    move away from (the failed one, else the current one), from the stored target state."""
    units = [unit for unit in record.state.values() if isinstance(unit, dict)]
    releases = [r for unit in units for r in unit.get("releases", [])]
    commit = next((str(u["current_sha"]) for u in units if u.get("current_sha")), None)
    return RecordFacts(
        last_deploy=str(releases[-1].get("at")) if releases else None,
        commit=commit,
        failed_commit=_failed_commit(units[0]) if units else None,
    )


def _failed_commit(unit: dict[str, Any]) -> str | None:
    failed = unit.get("failed") or {}
    return str(failed.get("sha") or unit.get("current_sha") or "") or None
