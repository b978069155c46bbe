"""An Environment's hooks and checks, run through reconciler.processes: a hook gets the
minimal environment, reconciler's own RECONCILER_* variables and what the spec passes in
`env:`; a check retries as its spec says."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from reconciler.kinds.environment.model import Check, Hook
from reconciler.processes import Outcome, http_get, retried, run


def run_hook(hook: Hook, cwd: Path, env: Mapping[str, str]) -> Outcome:
    """Run one hook in `cwd` with its own `env:` and `env` (reconciler's variables)."""
    return run(hook.run, cwd, hook.timeout, {**(hook.env or {}), **env})


def run_check(
    check: Check,
    cwd: Path,
    env: Mapping[str, str],
    gone: Callable[[], str | None] | None = None,
) -> Outcome:
    """Run a check, retrying `retries` times `interval` apart; `gone` saying why nothing can
    change any more (the service has exited) ends the wait."""

    def attempt() -> Outcome:
        if check.http is None:
            return run_hook(check.hook(), cwd, env)
        timeout = check.timeout or timedelta(seconds=5)
        return http_get(check.http, check.status or 200, check.contains, timeout)

    return retried(attempt, check.retries, check.interval, gone)
