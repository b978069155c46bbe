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

from tests.conftest import Workspace
from tests.gitservers import GitHttpServer, WorkRepo, git

PY = sys.executable
TOKEN = "s3cret-token"  # the http_server fixture's password
WEBHOOK_SECRET = "webhook-secret-6f1e"


@pytest.fixture
def app(ws: Workspace) -> Iterator[WorkRepo]:
    """ws/app: tags v1 and v2, each with a passing check.py."""
    repo = WorkRepo.create(ws.root / "app")
    for version in ("v1", "v2"):
        repo.commit(version, {"check.py": "import sys; sys.exit(0)\n", "VERSION": version})
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
