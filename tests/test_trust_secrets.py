"""Issue 12, items 1, 3 and 4 as a review broke them again through the CLI: a webhook's
credential header sent on to the port a redirect named, a password split over two
variables, a credential passed only through a hook's `env:` printed and inherited by git,
and a `--specs` location that made git start `git-remote-<transport>`."""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import pytest

from tests.conftest import Workspace
from tests.gitservers import HOST, make_bare, refs_of, seed_bare
from tests.test_trust_git import git_shim

ALERT_TOKEN = "Bearer alert-sentinel-7f3a91"
DEPLOY_TOKEN = "dep-sentinel-5678-c0ffee"
PROBE_TOKEN = "probe-sentinel-44d2e1"


# --------------------------------------------------------------------------------------------
# Helpers: a redirecting server that records what each port is sent; a destination whose
# pre-receive hook saves the environment git gave it
# --------------------------------------------------------------------------------------------


@dataclass
class Request:
    """One request as a port received it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Redirector:
    """Port `spec` answers every request with `status` and Location on port `elsewhere`,
    which answers 204 (a delivery that worked, had anyone followed). Both record requests."""

    status: int = 302
    seen: dict[str, list[Request]] = field(default_factory=lambda: {"spec": [], "elsewhere": []})

    def __post_init__(self) -> None:
        self.elsewhere = self._server("elsewhere", None)
        self.spec = self._server("spec", self.elsewhere)

    def _server(
        self, name: str, target: http.server.ThreadingHTTPServer | None
    ) -> http.server.ThreadingHTTPServer:
        seen, status = self.seen[name], self.status

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append(Request(self.command, self.path, dict(self.headers.items())))
                if target is None:
                    self.send_response(204)
                else:
                    self.send_response(status)
                    port = target.server_address[1]
                    self.send_header("Location", f"http://{HOST}:{port}{self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = handle_one

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def url(self, path: str = "/alerts") -> str:
        return f"http://{HOST}:{self.spec.server_address[1]}{path}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.spec, self.elsewhere):
            server.shutdown()
            server.server_close()


def dumping_destination(path: Path, dump: Path) -> Path:
    """A bare repository whose pre-receive hook saves its environment to `dump`."""
    make_bare(path)
    hook = path / "hooks" / "pre-receive"
    hook.write_text(f'#!/bin/sh\ncat /proc/$$/environ > "{dump}"\n')
    hook.chmod(0o755)
    return path


def everything_written(ws: Workspace) -> bytes:
    """Every file under the workspace's state directory (store, -wal, caches) as bytes."""
    state = ws.state.parent
    return b"".join(p.read_bytes() for p in sorted(state.rglob("*")) if p.is_file())


def store_text(ws: Workspace) -> str:
    """Every text value of every table of the store."""
    with sqlite3.connect(ws.state) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows = [row for t in tables for row in db.execute(f"SELECT * FROM {t}")]
    return json.dumps(rows, default=str)


@pytest.fixture
def redirector() -> Iterator[Redirector]:
    with Redirector() as server:
        yield server


# --------------------------------------------------------------------------------------------
# D4 (item 3): a webhook's header goes only to the URL written in the spec
# --------------------------------------------------------------------------------------------


def test_an_escalation_webhook_that_redirects_gets_no_header_elsewhere_and_fails_aloud(
    ws: Workspace, redirector: Redirector
) -> None:
    """The spec's webhook answers 302 to another port. The alert's Authorization header
    must never reach that port, and the escalation must fail visibly (not count as sent)."""
    ws.write_spec(
        "m.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: m}}
        spec:
          source: {{url: ../nonexistent.git}}
          destinations: [{{url: ../dst.git}}]
        ---
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: hp}}
        spec:
          selector: {{kinds: [Mirror]}}
          checks: [{{type: drift}}]
          remediation:
            - escalate:
                webhook: "{redirector.url()}"
                headers: {{Authorization: "${{ALERT_TOKEN}}"}}
        """,
    )
    env = {"ALERT_TOKEN": ALERT_TOKEN}
    healed = ws.run("heal", env=env, timeout=60)
    assert redirector.seen["elsewhere"] == [], "the header followed the redirect"
    [sent] = redirector.seen["spec"]  # the URL written in the spec got the alert, once
    assert sent.method == "POST" and sent.headers.get("Authorization") == ALERT_TOKEN
    assert healed.code == 1, healed.output
    assert "escalate #1 failed" in healed.stdout, healed.output
    moved = redirector.url().replace(
        str(redirector.spec.server_address[1]), str(redirector.elsewhere.server_address[1])
    )
    assert f"redirected the alert (HTTP 302 to {moved})" in healed.stdout, healed.output
    assert "write the URL it redirects to" in healed.stdout
    again = ws.run("heal", env=env, timeout=60)  # not alerted: tried again, still refused
    assert "escalate #2 failed" in again.stdout, again.output
    assert redirector.seen["elsewhere"] == []
    for text in (healed.output, again.output, ws.run("history", "--json").output):
        assert "alert-sentinel" not in text
    assert b"alert-sentinel" not in everything_written(ws)


# --------------------------------------------------------------------------------------------
# D5 (item 4): a credential is one whole ${VAR}
# --------------------------------------------------------------------------------------------


def test_a_password_split_over_two_variables_is_refused_before_any_git_runs(
    ws: Workspace,
) -> None:
    """`${PW_A}${PW_B}` passed validation, and git children then inherited both halves
    (neither is a value the redactor knew). It is refused like `x${PW_A}`, naming the field."""
    seed_bare(ws.root / "src.git", commits=1)
    dump = ws.root / "received-env"
    dumping_destination(ws.root / "dst.git", dump)
    ws.write_spec(
        "m.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: local}
        spec:
          source: {url: ../src.git}
          destinations: [{url: ../dst.git}]
        ---
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: remote}
        spec:
          source: {url: ../src.git}
          destinations:
            - url: "http://127.0.0.1:9/x.git"
              username: bot
              password: "${PW_A}${PW_B}"
        """,
    )
    env = {"PW_A": "half-one-aaaa", "PW_B": "half-two-bbbb"}
    expected = (
        "specs/m.yaml:16: Mirror/remote: spec.destinations[0].password: a credential is read "
        "from the environment: write it as ${VAR} (no default, no other text, one variable)"
    )
    for command in (["validate"], ["apply", "--yes"]):
        result = ws.run(*command, env=env)
        assert result.code == 1, result.output
        assert expected in result.stderr.splitlines(), result.output
        assert "half-" not in result.output
    assert not dump.exists(), "a git child ran"
    assert refs_of(ws.root / "dst.git") == {}


# --------------------------------------------------------------------------------------------
# D6 (item 4): a credential passed only through `env:` is masked and kept from other children
# --------------------------------------------------------------------------------------------


def env_specs(ws: Workspace, tmp_path: Path) -> None:
    """A local mirror (git children) beside an Environment whose build hook prints the
    token its `env:` passes and fails, and a policy whose command check does the same. The
    hook's `env:` also reads PATH, which every hook gets anyway: no credential."""
    ws.write_spec(
        "m.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: local, labels: {{team: t}}}}
        spec:
          source: {{url: ../src.git}}
          destinations: [{{url: ../dst.git}}]
        ---
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: prod}}
        spec:
          source: {{repo: ../src.git, ref: main}}
          target: {{path: ../deploy}}
          build:
            - run: [sh, -c, 'env > "{tmp_path}/hook-env"; echo token is $TOKEN; exit 1']
              env: {{TOKEN: "${{DEPLOY_TOKEN}}", PATH: "${{PATH}}"}}
        ---
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: probe}}
        spec:
          selector: {{labels: {{team: t}}}}
          checks:
            - type: command
              run: [sh, -c, 'echo probe says $P; exit 2']
              env: {{P: "${{PROBE_TOKEN}}"}}
        """,
    )


def test_a_credential_passed_only_through_env_is_masked_and_no_git_child_inherits_it(
    ws: Workspace, tmp_path: Path
) -> None:
    seed_bare(ws.root / "src.git", commits=1)
    dump = tmp_path / "received-env"
    dumping_destination(ws.root / "dst.git", dump)
    env_specs(ws, tmp_path)
    bin_dir, dumps = git_shim(tmp_path)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DEPLOY_TOKEN": DEPLOY_TOKEN,
        "PROBE_TOKEN": PROBE_TOKEN,
    }
    applied = ws.run("apply", "--yes", env=env)
    assert applied.code == 1, applied.output
    assert "failed build: sh exited 1: ...token is ***" in applied.output, applied.output
    hook_env = (tmp_path / "hook-env").read_bytes().splitlines()
    assert f"TOKEN={DEPLOY_TOKEN}".encode() in hook_env  # what env: passes, the hook gets
    assert not any(v.startswith(b"DEPLOY_TOKEN=") for v in hook_env)
    checked = ws.run("health", env=env)
    assert "probe says ***" in checked.output, checked.output
    shown = [
        applied.output,
        checked.output,
        ws.run("history", env=env).output,
        ws.run("history", "Environment/prod", env=env).output,
        ws.run("history", "Environment/prod", "--json", env=env).output,
        ws.run("status", "--json", env=env).output,
        ws.run("plan", "--json", env=env).output,
        store_text(ws),
    ]
    for text in shown:
        assert DEPLOY_TOKEN not in text and PROBE_TOKEN not in text, text
    written = everything_written(ws)
    assert DEPLOY_TOKEN.encode() not in written and PROBE_TOKEN.encode() not in written
    # git children: the destination's hook (a child of the push) and every git started
    assert refs_of(ws.root / "dst.git") == refs_of(ws.root / "src.git")
    environments = [dump.read_bytes(), *(d.read_bytes() for d in dumps.iterdir())]
    assert len(environments) >= 3, "no git child was seen: the test proves nothing"
    for environ in environments:
        for secret in (DEPLOY_TOKEN, PROBE_TOKEN):
            assert secret.encode() not in environ, environ.replace(b"\0", b"\n").decode()
        assert b"DEPLOY_TOKEN=" not in environ and b"PROBE_TOKEN=" not in environ
    for environ in environments[1:]:  # PATH read by `env:` is no secret: git keeps it
        assert f"PATH={env['PATH']}".encode() in environ.split(b"\0")


def test_a_short_value_passed_through_env_is_masked_alone_but_never_inside_a_sha(
    ws: Workspace,
) -> None:
    """A short value (under 8 characters) read by `env:` is masked where it stands alone
    ("port ***"), never inside a longer word: release names and shas stay whole in the
    output and the store."""
    refs = seed_bare(ws.root / "src.git", commits=1)
    sha = refs["refs/heads/main"]
    short = sha[:4]  # the first characters of the release's own sha
    ws.write_spec(
        "e.yaml",
        """
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {name: prod}
        spec:
          source: {repo: ../src.git, ref: main}
          target: {path: ../deploy}
          build:
            - run: [sh, -c, 'echo port $PORT; exit 1']
              env: {PORT: "${APP_PORT}"}
        """,
    )
    env = {"APP_PORT": short}
    applied = ws.run("apply", "--yes", env=env)
    assert applied.code == 1, applied.output
    assert "...port ***" in applied.output and f"...port {short}" not in applied.output
    assert f"release 1-{sha[:7]} (main, {sha[:7]}) failed build" in applied.output
    history = ws.run("history", "Environment/prod", "--json", env=env).output
    assert f"1-{sha[:7]}" in history and "port ***" in history
    assert sha in store_text(ws)


# --------------------------------------------------------------------------------------------
# D10 (item 1): a `--specs` location is checked like a spec's URL
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["option", "variable"])
def test_a_specs_location_naming_a_transport_helper_is_refused_at_once(
    ws: Workspace, how: str
) -> None:
    """`fd::0` made git start `git remote-fd` and wait for git's hour-long timeout."""
    for location, command in (("fd::0#main", "validate"), ("ext::sh -c id#main", "plan")):
        if how == "option":
            result = ws.run("--specs", location, command, timeout=30)
        else:
            result = ws.run(command, env={"RECONCILER_SPECS": location}, timeout=30)
        assert result.code == 1, result.output
        first = result.stderr.splitlines()[0]
        assert first == (
            f"{location}: --specs: transport::address forms run a program; use a path or a URL"
        ), result.output
        assert "Traceback" not in result.output
    assert not ws.state.exists()
