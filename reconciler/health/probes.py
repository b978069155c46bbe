"""The checks a HealthPolicy runs that read the world directly: http, command, deployment.

They reuse the Environment kind's hook runner and HTTP probe (timeouts that kill the whole
process group, bounded output). Checks that compare with the spec (drift, syncLag,
taxonomy) need a plan and live in the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from reconciler.health.model import CommandCheck, HealthCheck, HttpCheck
from reconciler.kinds.base import Context
from reconciler.kinds.environment.hooks import http_probe, run_check, run_hook
from reconciler.kinds.environment.model import Check, EnvironmentSpec, Hook
from reconciler.kinds.environment.releases import Layout, read_manifest
from reconciler.kinds.environment.services import Services
from reconciler.specs import Resource


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict on one resource."""

    type: str
    status: str  # Healthy | Progressing | Degraded | Missing | Unknown
    message: str


def probe(check: HealthCheck, base_dir: Path) -> CheckResult:
    """Run an http or command check (they do not depend on the resource)."""
    if isinstance(check, HttpCheck):
        outcome = http_probe(
            Check(
                http=check.url, status=check.status, contains=check.contains, timeout=check.timeout
            )
        )
    else:
        assert isinstance(check, CommandCheck)
        hook = Hook(run=check.run, timeout=check.timeout, env=check.env)
        outcome = run_hook(hook, base_dir, {})  # the minimal environment and its `env:`
    return CheckResult(check.type, "Healthy" if outcome.ok else "Degraded", outcome.detail)


def deployment_check(resource: Resource, context: Context) -> CheckResult:
    """An Environment's `verify` checks, run against its current release now."""
    spec = resource.spec
    if not isinstance(spec, EnvironmentSpec):
        return CheckResult("deployment", "Healthy", "not an environment")
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
