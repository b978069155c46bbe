"""The checks a HealthPolicy runs that read the world directly, whatever the resource:
http and command, through reconciler.processes (timeouts that kill the whole process
group, bounded output). Checks that compare with the spec (drift, syncLag) need a plan and
live in policies.py; those only a kind can answer (deployment, taxonomy) the kind answers
(kinds.base.Checker).
"""

from __future__ import annotations

from pathlib import Path

from reconciler.health.model import CommandCheck, HealthCheck, HttpCheck
from reconciler.kinds.base import CheckResult
from reconciler.processes import http_get, run


def probe(check: HealthCheck, base_dir: Path) -> CheckResult:
    """Run an http or command check (they do not depend on the resource)."""
    if isinstance(check, HttpCheck):
        outcome = http_get(check.url, check.status, check.contains, check.timeout)
    else:
        assert isinstance(check, CommandCheck)
        outcome = run(check.run, base_dir, check.timeout, check.env or {})  # and nothing else
    return CheckResult(check.type, "Healthy" if outcome.ok else "Degraded", outcome.detail)
