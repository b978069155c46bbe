"""Issue 12, the Environment kind: what hooks and checks may see, what a failure leaves
behind, and what status says while a release failed, a source is gone or a requirement is
not met. Real repositories, real hook processes, the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult, Workspace, status_row
from tests.gitservers import GitHttpServer, WorkRepo, git

PY = sys.executable
TOKEN = "s3cret-token"  # the http_server fixture's password
WEBHOOK_SECRET = "webhook-secret-6f1e"


@pytest.fixture
def app(ws: Workspace) -> Iterator[WorkRepo]:
    """ws/app: tags v1 and v2 whose check.py passes, v3 whose check.py fails; v1's
    activate.sh fails once `broken-v1` exists beside the releases."""
    repo = WorkRepo.create(ws.root / "app")
    for version, code in (("v1", 0), ("v2", 0), ("v3", 1)):
        activate = "test ! -f ../../broken-v1\n" if version == "v1" else "exit 0\n"
        files = {"check.py": f"import sys; sys.exit({code})\n", "activate.sh": activate}
        repo.commit(version, {**files, "VERSION": version})
        repo.tag(version)
    yield repo
    for pidfile in ws.root.glob("deploy/*/*.pid"):
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def environment(
    ws: Workspace, name: str = "staging", ref: str = "v1", source: str = "", extra: str = ""
) -> None:
    """specs/NAME.yaml: an Environment of ws/app (or `source`) deployed to ws/deploy/NAME."""
    lines = [
        "apiVersion: reconciler/v1",
        "kind: Environment",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  source: {source or f'{{repo: ../app, ref: {ref}}}'}",
        f"  target: {{path: ../deploy/{name}}}",
        *(f"  {line}" for line in extra.strip().splitlines()),
    ]
    ws.write_spec(f"{name}.yaml", "\n".join(lines) + "\n")


def environ_of(pid: int) -> dict[str, str]:
    """A running process's environment, as /proc shows it to anyone who may read it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def env_file(path: Path) -> dict[str, str]:
    return json.loads(path.read_text())


DUMP = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
# An activate hook that leaves a daemon running, detached into its own session (`$$$$`: the
# shell's `$$`, escaped from ${VAR} expansion).
DAEMON = "setsid sh -c 'echo $$$$ > ../../daemon.pid; exec sleep 60' </dev/null >/dev/null 2>&1 &"


def test_hooks_checks_and_daemons_get_no_secret_but_what_env_passes(
    ws: Workspace, app: WorkRepo, http_server: GitHttpServer
) -> None:
    git("clone", "--quiet", "--bare", str(app.path), str(http_server.root / "app.git"))
    source = (
        f'{{repo: "{http_server.url("app.git")}", ref: v1, username: bot,'
        ' password: "${BACKUP_TOKEN}"}'
    )
    environment(
        ws,
        source=source,
        extra=f"""
activate: [{{run: [sh, -c, "{DAEMON}"], env: {{GREETING: "${{GREETING}}", MODE: plain}}}}]
verify: [{{run: ["{PY}", -c, "{DUMP}", ../../verify.json], env: {{GREETING: "${{GREETING}}"}}}}]
""",
    )
    ws.write_spec(
        "policy.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: probe}}
        spec:
          selector: {{addresses: [Environment/staging]}}
          checks: [{{type: command, run: ["{PY}", -c, "{DUMP}", ../command.json]}}]
        """,
    )
    secrets = {"BACKUP_TOKEN": TOKEN, "RECONCILER_WEBHOOK_SECRET": WEBHOOK_SECRET}
    variables = {**secrets, "GREETING": "hello-from-the-spec"}
    result = ws.run("apply", "--yes", env=variables)
    assert result.code == 0, result.output
    assert ws.run("plan", "--detailed-exitcode", env=variables).code == 0
    assert ws.run("health", env=variables).code == 0

    deploy = ws.root / "deploy" / "staging"
    daemon = environ_of(int((deploy / "daemon.pid").read_text()))
    seen = {
        "the daemon activate left running": daemon,
        "a verify check": env_file(deploy / "verify.json"),
        "a HealthPolicy command check": env_file(ws.root / "command.json"),
    }
    for who, variables_seen in seen.items():
        leaked = {k for k, v in variables_seen.items() if k in secrets or v in secrets.values()}
        assert not leaked, f"{who} got {leaked}"
        assert variables_seen["PATH"] == os.environ["PATH"], who  # the minimal environment
    assert daemon["GREETING"] == "hello-from-the-spec" and daemon["MODE"] == "plain"
    assert daemon["RECONCILER_ENV"] == "staging" and daemon["RECONCILER_REF"] == "v1"
    assert seen["a verify check"]["GREETING"] == "hello-from-the-spec"
    assert "GREETING" not in seen["a HealthPolicy command check"]  # only what it was given
    # The value passed is not stored: the store holds a digest of it.
    state = b"".join(p.read_bytes() for p in ws.state.parent.glob("reconciler.db*"))
    assert b"hello-from-the-spec" not in state and TOKEN.encode() not in state


def test_a_credential_passed_by_env_reaches_the_hook_and_is_masked_in_its_output(
    ws: Workspace, app: WorkRepo, http_server: GitHttpServer
) -> None:
    # Passing the source's password to a hook is the user's explicit choice; what the hook
    # prints of it is still masked wherever reconciler shows or stores it.
    git("clone", "--quiet", "--bare", str(app.path), str(http_server.root / "app.git"))
    source = (
        f'{{repo: "{http_server.url("app.git")}", ref: v1, username: bot,'
        ' password: "${BACKUP_TOKEN}"}'
    )
    hook = "echo token=$TOKEN; exit 1"
    environment(
        ws,
        source=source,
        extra=f'build: [{{run: [sh, -c, "{hook}"], env: {{TOKEN: "${{BACKUP_TOKEN}}"}}}}]',
    )
    result = ws.run("apply", "--yes", env={"BACKUP_TOKEN": TOKEN})
    assert result.code == 1 and "token=***" in result.stdout, result.output
    history = ws.run("history", "Environment/staging", env={"BACKUP_TOKEN": TOKEN})
    assert "token=***" in history.stdout, history.output
    shown = result.output + history.output
    state = b"".join(p.read_bytes() for p in ws.state.parent.glob("reconciler.db*"))
    assert TOKEN not in shown and TOKEN.encode() not in state


CHECK = f'verify: [{{run: ["{PY}", check.py]}}]'
ACTIVATE = "activate: [{run: [sh, activate.sh]}]"


def releases(ws: Workspace, name: str = "staging") -> list[str]:
    """Everything in releases/, hidden entries included."""
    return sorted(p.name for p in (ws.root / "deploy" / name / "releases").iterdir())


def assert_converged(ws: Workspace, result: CliResult) -> None:
    assert result.code == 0, result.output
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output


# -- 9: a failed release stays failed until it passes -----------------------------------


def test_a_first_release_that_failed_stays_failed_after_an_unrelated_spec_edit(
    ws: Workspace, app: WorkRepo
) -> None:
    # Nothing to roll back to: 1-<v3> stays current, failed. Editing keepReleases must not
    # turn it into "as the spec wants": the release is verified again, and fails again.
    environment(ws, ref="v3", extra=CHECK)
    assert ws.run("apply", "--yes").code == 1
    environment(ws, ref="v3", extra=f"{CHECK}\nkeepReleases: 4")
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2, plan.output
    assert "as the spec wants" not in plan.stdout and "which failed verify" in plan.stdout
    assert status_row(ws, "Environment/staging")["health"] == "Degraded"
    again = ws.run("apply", "--yes")
    assert again.code == 1 and "failed verify" in again.stdout, again.output
    assert status_row(ws, "Environment/staging")["health"] == "Degraded"
    blocked = ws.run("plan", "--detailed-exitcode")
    assert blocked.code == 2 and "not deployed again until the spec changes" in blocked.stdout
    # Only a passing verify of that release clears it.
    environment(ws, ref="v3", extra='verify: [{run: ["true"]}]\nkeepReleases: 4')
    assert_converged(ws, ws.run("apply", "--yes"))
    assert status_row(ws, "Environment/staging")["health"] == "Healthy"
    assert releases(ws) == [f"1-{app.rev('v3')[:7]}"]  # verified again, not redeployed


def test_a_failed_release_kept_without_auto_rollback_stays_failed(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, ref="v1", extra=f"{CHECK}\nautoRollback: false")
    assert_converged(ws, ws.run("apply", "--yes"))
    environment(ws, ref="v3", extra=f"{CHECK}\nautoRollback: false")
    assert ws.run("apply", "--yes").code == 1
    environment(ws, ref="v3", extra=f"{CHECK}\nautoRollback: false\nkeepReleases: 3")
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "as the spec wants" not in plan.stdout, plan.output
    assert ws.run("apply", "--yes").code == 1
    row = status_row(ws, "Environment/staging")
    assert row["health"] == "Degraded" and "failed verify" in row["message"], row


def test_a_failed_commit_stays_blocked_when_its_spec_is_removed_and_added_again(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, ref="v1", extra=CHECK)
    assert_converged(ws, ws.run("apply", "--yes"))
    environment(ws, ref="v3", extra=CHECK)
    failed = ws.run("apply", "--yes")
    assert failed.code == 1 and "rolled back to 1-" in failed.stdout, failed.output
    spec = ws.specs / "staging.yaml"
    text = spec.read_text()
    spec.unlink()  # the resource is forgotten with its record...
    assert ws.run("apply", "--yes").code == 0
    spec.write_text(text)  # ...and comes back, as it was
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "not deployed again until the spec changes" in plan.stdout
    assert ws.run("apply", "--yes").code == 1
    assert [r.split("-")[0] for r in releases(ws)] == ["1", "2"]  # no release 3 of v3


# -- 12: a rollback that fails says so ------------------------------------------------------


def test_a_rollback_whose_activate_fails_is_degraded_and_says_so(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, ref="v1", extra=f"{ACTIVATE}\n{CHECK}")
    assert_converged(ws, ws.run("apply", "--yes"))
    (ws.root / "deploy" / "staging" / "broken-v1").touch()  # v1 can no longer be activated
    environment(ws, ref="v3", extra=f"{ACTIVATE}\n{CHECK}")
    result = ws.run("apply", "--yes")
    assert result.code == 1
    assert "rolled back to 1-" in result.stdout and "but activate failed: sh exited 1" in (
        result.stdout
    ), result.output
    row = status_row(ws, "Environment/staging")
    assert row["health"] == "Degraded" and "but activate failed" in row["message"], row
    history = json.loads(ws.run("history", "Environment/staging", "--json").stdout)
    assert "but activate failed" in history[0]["summary"], history[0]


# -- 13: a failed export leaves no litter --------------------------------------------------


def test_an_export_that_runs_out_of_space_leaves_no_partial_release(
    ws: Workspace, app: WorkRepo
) -> None:
    from tests.reliability.test_disk import _fill, _tmpfs  # how disk-full is made here

    with _tmpfs(ws.root / "deploy") as deploy:
        environment(ws, ref="v1")
        assert_converged(ws, ws.run("apply", "--yes"))
        app.commit("big", {"big.bin": os.urandom(1_500_000)})
        app.tag("v2", target="HEAD")
        environment(ws, ref="v2")
        filler = _fill(deploy, 256 << 10)
        try:
            result = ws.run("apply", "--yes")
            assert result.code == 1 and "No space left" in result.output, result.output
            assert releases(ws) == [f"1-{app.rev('v1')[:7]}"]  # no .2-<sha>.partial
        finally:
            filler.unlink()
        assert_converged(ws, ws.run("apply", "--yes"))


def test_a_partial_export_left_by_a_crash_is_removed_by_the_next_deploy(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, ref="v1")
    assert_converged(ws, ws.run("apply", "--yes"))
    litter = ws.root / "deploy" / "staging" / "releases" / ".7-0123456.partial"
    (litter / "deep").mkdir(parents=True)  # what kill -9 in the middle of an export leaves
    (litter / "deep" / "file").write_bytes(b"x" * 1000)
    environment(ws, ref="v2")
    assert_converged(ws, ws.run("apply", "--yes"))
    assert releases(ws) == [f"1-{app.rev('v1')[:7]}", f"2-{app.rev('v2')[:7]}"]


# -- 8: a dead source is never in sync ------------------------------------------------------


@pytest.mark.parametrize("how", ["renamed", "unreachable"])
def test_an_environment_whose_source_is_gone_is_blocked_and_says_why(
    ws: Workspace, app: WorkRepo, how: str
) -> None:
    environment(ws, ref="v1")
    assert_converged(ws, ws.run("apply", "--yes"))
    if how == "renamed":
        app.path.rename(ws.root / "app-moved")
        why = "not a git repository"
    else:
        environment(ws, ref="v1", source='{repo: "http://127.0.0.1:9/app.git", ref: v1}')
        why = "Connection refused"
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 2 and "blocked" in plan.stdout and why in plan.stdout, plan.output
    assert "as the spec wants" not in plan.stdout
    applied = ws.run("apply", "--yes")
    assert applied.code == 1 and why in applied.stdout, applied.output
    row = status_row(ws, "Environment/staging")
    assert row["sync"] != "Synced" and row["health"] in ("Unknown", "Degraded"), row
    assert why in row["message"], row


# -- 21: waiting on `requires` is Progressing -------------------------------------------------


def test_an_environment_waiting_for_what_it_requires_is_progressing_not_degraded(
    ws: Workspace, app: WorkRepo
) -> None:
    environment(ws, name="staging", ref="v1")
    environment(ws, name="production", ref="v1", extra="requires: [staging]")
    assert_converged(ws, ws.run("apply", "--yes"))
    ws.write_spec(
        "policy.yaml",
        """
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: deploys}
        spec:
          selector: {kinds: [Environment]}
          checks: [{type: drift}]
          remediation: [{escalate: {file: ../alerts.jsonl}}]
        """,
    )
    environment(ws, name="production", ref="v2", extra="requires: [staging]")
    row = status_row(ws, "Environment/production")
    assert row["health"] == "Progressing" and row["sync"] == "OutOfSync", row
    assert "requires staging on v2" in row["message"], row
    assert ws.run("plan", "--out", "waiting.json").code == 0
    saved = ws.run("apply", "waiting.json")  # the waiting mark is a field a saved plan may hold
    assert saved.code == 1 and "refused" not in saved.output, saved.output
    assert "requires staging on v2" in saved.output, saved.output
    health = ws.run("health", "--json")
    assert health.code == 0, health.output
    production = next(
        r for r in json.loads(health.stdout)["resources"] if r["address"].endswith("production")
    )
    assert production["status"] == "Progressing", production
    assert ws.run("heal").code == 0
    assert not (ws.root / "alerts.jsonl").exists()  # no incident, no alert
    environment(ws, name="staging", ref="v2")  # once staging runs v2, production follows
    assert_converged(ws, ws.run("apply", "--yes"))


# -- 25: stopping reconciler stops what it started ----------------------------------------


def group_alive(group: int) -> bool:
    """Whether any process of process group `group` still runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_apply_ends_the_running_hook(
    ws: Workspace, app: WorkRepo, signum: signal.Signals
) -> None:
    # The build hook writes its pid (its process group: it leads its own session), then
    # sleeps 60 s in a child unless `fast` exists beside the releases.
    hook = "echo $$$$ > ../../hook.pid; test -f ../../fast || sleep 60"
    environment(ws, ref="v1", extra=f'build: [{{run: [sh, -c, "{hook}"], timeout: 5m}}]')
    pidfile = ws.root / "deploy" / "staging" / "hook.pid"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    apply = subprocess.Popen(
        [PY, "-m", "reconciler", "apply", "--yes"],
        cwd=ws.root,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert time.monotonic() < deadline and apply.poll() is None, "the hook never ran"
            time.sleep(0.05)
        group = int(pidfile.read_text())
        time.sleep(0.3)  # the hook's sleep has started
        assert group_alive(group)
        stopped = time.monotonic()
        apply.send_signal(signum)
        output, _ = apply.communicate(timeout=20)
        assert apply.returncode != 0, output
        while group_alive(group) and time.monotonic() - stopped < 5:
            time.sleep(0.05)
        assert not group_alive(group), "the hook outlived the apply it belonged to"
        assert time.monotonic() - stopped < 5, output
        assert "Traceback" not in output, output
    finally:
        if apply.poll() is None:
            apply.kill()
        with contextlib.suppress(ValueError, ProcessLookupError, FileNotFoundError):
            os.killpg(int(pidfile.read_text()), signal.SIGKILL)
    (ws.root / "deploy" / "staging" / "fast").touch()
    assert_converged(ws, ws.run("apply", "--yes"))
