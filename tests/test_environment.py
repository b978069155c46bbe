"""Environment through the CLI: real releases, real hook processes, a real HTTP service."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.kinds.environment.hooks import run_check, run_hook
from reconciler.kinds.environment.model import Check, Hook
from reconciler.kinds.environment.releases import switch_link
from tests.conftest import ROOT, Workspace
from tests.gitservers import WorkRepo, free_port

PY = sys.executable
SERVICE = (ROOT / "tests" / "fixtures" / "service.py").read_text()


@pytest.fixture
def app(ws: Workspace) -> Iterator[WorkRepo]:
    """ws/app: a repository with tags v1 (healthy), v2 (healthy), v3 (broken)."""
    repo = WorkRepo.create(ws.root / "app")
    files = {"service.py": SERVICE, "check.py": "import sys; sys.exit(0)\n"}
    for version in ("v1", "v2", "v3-broken"):
        repo.commit(version, {**files, "VERSION": f"{version}\n"})
        repo.tag(version.split("-")[0])
    yield repo
    pidfile_kill(ws.root)


def pidfile_kill(root: Path) -> None:
    """Stop services the tests' activate hooks started."""
    for pidfile in root.glob("deploy/*/service.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)


def env_spec(
    ws: Workspace,
    name: str = "staging",
    ref: str = "v1",
    extra: str = "",
    port: int = 0,
    verify: str = "",
    activate: bool = True,
) -> None:
    lines = [
        "apiVersion: reconciler/v1",
        "kind: Environment",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  source: {{repo: ../app, ref: {ref}}}",
        f"  target: {{path: ../deploy/{name}}}",
    ]
    if activate and port:
        lines.append(
            f'  activate: [{{run: ["{PY}", "service.py", "start", "{port}"], timeout: 20s}}]'
        )
    if verify:
        lines.append(f"  verify: {verify}")
    elif port:
        lines.append(
            f'  verify: [{{http: "http://127.0.0.1:{port}/health", status: 200, contains: ok,'
            " retries: 2, interval: 1s, timeout: 5s}]"
        )
    lines += [f"  {line}" for line in extra.strip().splitlines()]
    ws.write_spec(f"{name}.yaml", "\n".join(lines) + "\n")


def current(ws: Workspace, name: str = "staging") -> str:
    return Path(os.path.realpath(ws.root / "deploy" / name / "current")).name


def served(port: int) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.read().decode().strip()
    except Exception as error:
        return f"error: {error}"


def test_deploy_verify_and_rollback_of_a_failing_release(ws: Workspace, app: WorkRepo) -> None:
    port = free_port()
    env_spec(ws, ref="v1", port=port)
    first = ws.run("apply", "--yes")
    assert first.code == 0, first.output
    assert current(ws) == f"1-{app.rev('v1')[:7]}"
    assert served(port) == "ok v1"
    assert ws.run("plan", "--detailed-exitcode").code == 0  # idempotent

    env_spec(ws, ref="v3", port=port)  # v3's service answers 500
    failed = ws.run("apply", "--yes")
    assert failed.code == 1
    assert "failed verify; rolled back to 1-" in failed.stdout
    assert current(ws) == f"1-{app.rev('v1')[:7]}"  # the failing release never stays current
    assert served(port) == "ok v1"  # and the previous one was re-activated
    status = json.loads(ws.run("status", "--json").stdout)[0]
    assert status["health"] == "Degraded"
    history = json.loads(ws.run("history", "Environment/staging", "--json").stdout)
    assert "failed verify" in history[0]["summary"] and "status 500" in history[0]["summary"]
    again = ws.run("plan", "--detailed-exitcode")  # no rollback loop: not retried
    assert again.code == 2 and "not deployed again until the spec changes" in again.stdout

    env_spec(ws, ref="v2", port=port)
    plan = json.loads(ws.run("plan", "--json").stdout)["changes"][0]
    assert [s["op"] for s in plan["steps"]] == ["fetch", "export", "switch", "activate", "verify"]
    assert "runs release 1-" in plan["reason"] and "spec wants v2" in plan["reason"]
    assert ws.run("apply", "--yes").code == 0
    assert served(port) == "ok v2"


def test_hooks_run_without_shell_with_environment_variables(ws: Workspace, app: WorkRepo) -> None:
    dump = "import os,json; json.dump({k: v for k, v in os.environ.items() if k.startswith('RECONCILER_')}, open('env.json', 'w'))"  # noqa: E501
    env_spec(ws, extra=f"build: [{{run: [{json.dumps(PY)}, '-c', {json.dumps(dump)}]}}]")
    assert ws.run("apply", "--yes").code == 0
    seen = json.loads((ws.root / "deploy/staging/current/env.json").read_text())
    assert seen["RECONCILER_ENV"] == "staging" and seen["RECONCILER_REF"] == "v1"
    assert seen["RECONCILER_SHA"] == app.rev("v1^{commit}")
    assert seen["RECONCILER_RELEASE"] == current(ws)


def test_a_hanging_hook_times_out_and_megabytes_of_output_are_bounded(
    ws: Workspace, app: WorkRepo
) -> None:
    env_spec(ws, extra='build: [{run: ["sleep", "60"], timeout: 1s}]')
    started = time.monotonic()
    hung = ws.run("apply", "--yes")
    assert hung.code == 1 and "timed out after 1s" in hung.stdout
    assert time.monotonic() - started < 30
    assert not (ws.root / "deploy/staging/current").exists()

    noisy = "import sys; sys.stdout.write('x' * 20_000_000); sys.exit(3)"
    env_spec(ws, ref="v2", extra=f"build: [{{run: [{json.dumps(PY)}, '-c', {json.dumps(noisy)}]}}]")
    loud = ws.run("apply", "--yes")
    assert loud.code == 1 and "exited 3" in loud.stdout
    assert len(loud.stdout) < 20_000  # a bounded tail, not 20 MB


def test_blue_green_switches_slots_and_rolls_back_instantly(ws: Workspace, app: WorkRepo) -> None:
    marker = "import os; open(os.environ['RECONCILER_SLOT'] + '.previewed', 'w').close()"
    preview = f"preview: [{{run: [{json.dumps(PY)}, '-c', {json.dumps(marker)}]}}]"
    env_spec(ws, extra=f"strategy: blue-green\n{preview}")
    assert ws.run("apply", "--yes").code == 0
    root = ws.root / "deploy/staging"
    assert os.readlink(root / "current") == "blue"
    assert (root / "current" / "blue.previewed").exists()
    env_spec(ws, ref="v2", extra=f"strategy: blue-green\n{preview}")
    assert ws.run("apply", "--yes").code == 0
    assert os.readlink(root / "current") == "green"
    assert os.readlink(root / "blue").endswith(f"1-{app.rev('v1')[:7]}")  # old slot stays ready
    back = ws.run("rollback", "Environment/staging")
    assert back.code == 0, back.output
    assert os.readlink(root / "current") == "blue"
    status = json.loads(ws.run("status", "--json").stdout)[0]
    assert status["pinned"] == f"release 1-{app.rev('v1')[:7]}"


def test_a_failing_preview_never_moves_current(ws: Workspace, app: WorkRepo) -> None:
    env_spec(ws, extra="strategy: blue-green")
    assert ws.run("apply", "--yes").code == 0
    env_spec(ws, ref="v2", extra='strategy: blue-green\npreview: [{run: ["false"]}]')
    result = ws.run("apply", "--yes")
    assert result.code == 1 and "failed preview" in result.stdout
    assert os.readlink(ws.root / "deploy/staging/current") == "blue"


def test_requires_gates_production_on_a_healthy_staging(ws: Workspace, app: WorkRepo) -> None:
    env_spec(ws, name="staging", ref="v1")
    env_spec(ws, name="production", ref="v1", extra="requires: [staging]")
    both = ws.run("apply", "--yes")  # staging first, then production sees it healthy
    assert both.code == 0, both.output
    assert current(ws, "production").endswith(app.rev("v1")[:7])
    env_spec(ws, name="production", ref="v2", extra="requires: [staging]")
    blocked = ws.run("plan", "--detailed-exitcode")
    assert blocked.code == 2
    assert "requires staging on v2" in blocked.stdout
    assert ws.run("apply", "--yes").code == 1
    assert current(ws, "production").endswith(app.rev("v1")[:7])
    env_spec(ws, name="staging", ref="v2")
    assert ws.run("apply", "--yes").code == 0
    assert current(ws, "production").endswith(app.rev("v2")[:7])


def test_production_does_not_wait_on_a_staging_that_failed(ws: Workspace, app: WorkRepo) -> None:
    # Production's own verify would retry for a minute; staging's failure ends it at once.
    env_spec(ws, name="staging", ref="v1", verify='[{run: ["sh", "-c", "exit 3"]}]')
    slow = '[{run: ["sh", "-c", "exit 1"], retries: 60, interval: 1s}]'
    env_spec(ws, name="production", ref="v1", verify=slow, extra="requires: [staging]")
    started = time.monotonic()
    result = ws.run("apply", "--yes")
    assert result.code == 1 and "failed verify" in result.stdout, result.output
    assert "blocked Environment/production: requires staging on v1" in result.stdout
    assert time.monotonic() - started < 20
    assert not (ws.root / "deploy" / "production" / "current").exists()


def test_rollback_pins_until_the_spec_changes(ws: Workspace, app: WorkRepo) -> None:
    env_spec(ws, ref="v1")
    assert ws.run("apply", "--yes").code == 0
    env_spec(ws, ref="v2")
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("rollback", "Environment/staging", "--to", "1").code == 0
    assert current(ws) == f"1-{app.rev('v1')[:7]}"
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0 and "pinned by a rollback" in plan.stdout
    assert ws.run("apply", "--yes").code == 0
    assert current(ws).startswith("1-")  # the next reconcile does not undo it
    missing = ws.run("rollback", "Environment/staging", "--to", "9")
    assert missing.code == 1 and "no release 9" in missing.stderr
    assert ws.run("rollback", "Environment/staging", "--unpin").code == 0
    assert ws.run("apply", "--yes").code == 0
    assert current(ws).endswith(app.rev("v2")[:7])


def test_keep_releases_prunes_old_ones_but_never_current_or_previous(
    ws: Workspace, app: WorkRepo
) -> None:
    for ref in ("v1", "v2", "v1", "v2"):
        env_spec(ws, ref=ref, extra="keepReleases: 2")
        assert ws.run("apply", "--yes").code == 0
    releases = sorted(p.name for p in (ws.root / "deploy/staging/releases").iterdir())
    assert len(releases) == 2 and current(ws) in releases
    assert [r.split("-")[0] for r in releases] == ["3", "4"]


def test_a_release_altered_by_hand_is_drift(ws: Workspace, app: WorkRepo) -> None:
    env_spec(ws, ref="v1")
    assert ws.run("apply", "--yes").code == 0
    (ws.root / "deploy/staging/current/VERSION").write_text("edited on the server\n")
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "altered by hand: VERSION changed" in plan.stdout
    assert json.loads(ws.run("status", "--json").stdout)[0]["sync"] == "OutOfSync"
    assert ws.run("apply", "--yes").code == 0
    assert (ws.root / "deploy/staging/current/VERSION").read_text() == "v1\n"
    assert current(ws).startswith("2-")
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_readers_never_see_a_missing_current_during_switches(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / "releases" / name).mkdir(parents=True)
    link = tmp_path / "current"
    switch_link(link, "releases/a")
    misses = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            if not os.path.isdir(link):
                misses.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(2000):
        switch_link(link, f"releases/{'ab'[i % 2]}")
    done.set()
    reader.join()
    assert misses == []


def test_a_check_that_cannot_start_ends_its_retries_at_once(ws: Workspace, app: WorkRepo) -> None:
    env_spec(ws, verify='[{run: ["./no-such-probe"], retries: 50, interval: 1s}]')
    started = time.monotonic()
    result = ws.run("apply", "--yes")
    assert result.code == 1 and "cannot run ./no-such-probe" in result.stdout
    assert time.monotonic() - started < 20  # not 50 retries a second apart


def test_a_hook_ends_when_its_process_exits_even_if_a_child_keeps_running(
    tmp_path: Path,
) -> None:
    # An activate hook that starts a service in the background: the service inherits the
    # output pipe and runs on, but the hook is over when its own process exits.
    hook = Hook(run=["sh", "-c", "sleep 30 & echo started"], timeout=timedelta(seconds=60))
    started = time.monotonic()
    outcome = run_hook(hook, tmp_path, {})
    assert outcome.ok and time.monotonic() - started < 3  # not the 30 s of the service


def test_a_command_the_shell_cannot_find_ends_retries_at_once(tmp_path: Path) -> None:
    check = Check(run=["sh", "-c", "./no-such-probe"], retries=50, interval=timedelta(seconds=1))
    started = time.monotonic()
    outcome = run_check(check, tmp_path, {})
    assert not outcome.ok and "exited 127" in outcome.detail
    assert time.monotonic() - started < 10  # not 50 retries a second apart


def test_a_first_release_that_fails_verify_is_never_reported_healthy(
    ws: Workspace, app: WorkRepo
) -> None:
    # Nothing earlier to roll back to: current stays on the failed release, and every
    # later plan and status must say so rather than "as the spec wants".
    env_spec(ws, verify='[{run: ["sh", "-c", "exit 3"]}]')
    assert ws.run("apply", "--yes").code == 1
    again = ws.run("plan", "--detailed-exitcode")
    assert again.code == 2 and "not deployed again until the spec changes" in again.stdout
    status = json.loads(ws.run("status", "--json").stdout)[0]
    assert status["health"] == "Degraded", status
    env_spec(ws, ref="v2")  # a new spec deploys again, and verifies
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_verify_stops_waiting_once_the_service_activate_started_has_exited(
    ws: Workspace, app: WorkRepo
) -> None:
    # The service detaches (its own session, as a daemon does) and crashes 2 s later:
    # 30 retries a second apart would take 30 s; they end once it is gone.
    crashing = (
        "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time;"
        " time.sleep(2)'], start_new_session=True, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL)"
    )
    env_spec(
        ws,
        verify=f'[{{http: "http://127.0.0.1:{free_port()}/health", retries: 30, interval: 1s}}]',
        extra=f'activate: [{{run: ["{PY}", "-c", "{crashing}"]}}]',
    )
    started = time.monotonic()
    result = ws.run("apply", "--yes")
    assert result.code == 1 and "failed verify" in result.stdout, result.output
    assert "activate left running (pid " in result.stdout and "have exited" in result.stdout
    assert time.monotonic() - started < 15, result.output


DAEMON = """#!/bin/sh
# Detaches into its own session and writes its pid beside the releases; a second later,
# LEAVE (what a daemon may do: change directory, drop its environment), runs `$1` with the
# release directory in $DIR, and lives on.
setsid sh -c 'echo $$ > ../../service.pid; sleep 1; LEAVE DIR="$1" sh -c "$2; exec sleep 30"' \\
  daemon "$PWD" "$1" </dev/null >/dev/null 2>&1 &
"""


def daemon_activate(ws: Workspace, then: str, leave: bool) -> str:
    """An activate hook starting DAEMON with `then`; `leave`: it leaves the release directory
    and drops its environment, so that neither finds it any more."""
    script = ws.root / "daemon.sh"
    script.write_text(DAEMON.replace("LEAVE", "cd /; exec env -i" if leave else "exec env"))
    return f'activate: [{{run: ["sh", "{script}", "{then}"]}}]'


def test_a_service_that_drops_its_environment_is_still_waited_for(
    ws: Workspace, app: WorkRepo
) -> None:
    # After 1 s nothing in its environment or working directory tells that the service
    # belongs to the release; it is ready after 3 s. Followed by pid and start time, it is
    # waited for, not declared exited.
    env_spec(
        ws,
        verify='[{run: ["test", "-f", "ready"], retries: 10, interval: 1s}]',
        extra=daemon_activate(ws, "sleep 2; touch $DIR/ready", leave=True),
    )
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert "healthy" in result.stdout
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_the_deployment_check_stops_waiting_once_the_service_has_exited(
    ws: Workspace, app: WorkRepo
) -> None:
    env_spec(
        ws,
        # Each check run leaves a mark, so the service is killed only once the checks of
        # `health` retry (a fixed delay lost that race on a loaded machine).
        verify='[{run: [sh, -c, "touch ../../checked; test -f ok"], retries: 30, interval: 1s}]',
        extra=daemon_activate(ws, "touch $DIR/ok", leave=False),
    )
    assert ws.run("apply", "--yes").code == 0
    checked = ws.root / "deploy" / "staging" / "checked"
    checked.unlink()
    ws.write_spec(
        "policy.yaml",
        """
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: deploys}
        spec:
          selector: {addresses: [Environment/staging]}
          checks: [{type: deployment}]
        """,
    )
    (ws.root / "deploy" / "staging" / "current" / "ok").unlink()  # the service stops answering
    pid = int((ws.root / "deploy" / "staging" / "service.pid").read_text())

    def crash_once_checked() -> None:  # and then crashes, while the checks retry
        deadline = time.monotonic() + 60
        while not checked.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=crash_once_checked, daemon=True).start()
    started = time.monotonic()
    result = ws.run("health", "--json")
    row = json.loads(result.stdout)["resources"][0]
    assert result.code == 1 and row["status"] == "Degraded", row
    assert f"running for the release (pid {pid}) have exited" in row["message"], row
    assert time.monotonic() - started < 15  # not 30 retries a second apart
