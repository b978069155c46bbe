"""Hooks, checks and the webhook endpoint (issue 6): programs run without a shell and die
at their timeout with everything they started; `watch` listens on loopback unless told
otherwise, and a webhook without the shared secret is refused and triggers nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Workspace
from tests.gitservers import WorkRepo, free_port, seed_bare

PY = sys.executable
# Arguments a shell would act on: substitutions, separators, globs, variables, redirections.
HOSTILE = [
    "$(touch pwned-substitution)",
    "`touch pwned-backticks`",
    "; touch pwned-separator",
    "&& touch pwned-and",
    "| touch pwned-pipe",
    "> pwned-redirect",
    "*",
    "$HOME",
    "${PATH}",
    "~",
]
RECORD_ARGV = "import sys, json; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
# Starts a grandchild that would outlive a plain kill, records its pid, then hangs.
SPAWN_AND_HANG = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "open(sys.argv[1], 'w').write(str(child.pid)); time.sleep(120)"
)


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie nobody reaped yet counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def flow(values: list[str]) -> str:
    """A YAML flow list of `values`; `${` is written `$${`, the spec's literal `$`."""
    return "[" + ", ".join(json.dumps(v.replace("${", "$${")) for v in values) + "]"


@pytest.fixture
def app(ws: Workspace) -> WorkRepo:
    repo = WorkRepo.create(ws.root / "app")
    repo.commit("v1", {"VERSION": "v1\n"})
    repo.tag("v1")
    return repo


def write_environment(ws: Workspace, build: str, verify: str, checks: str) -> None:
    ws.write_spec(
        "env.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: prod}}
        spec:
          source: {{repo: ../app, ref: v1}}
          target: {{path: ../deploy/prod}}
          build: {build}
          verify: {verify}
        ---
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: probe}}
        spec:
          selector: {{kinds: [Environment]}}
          checks: {checks}
        """,
    )


def test_hooks_and_checks_get_their_arguments_verbatim_and_no_shell(
    ws: Workspace, app: WorkRepo
) -> None:
    hook = flow([PY, "-c", RECORD_ARGV, "build-argv.json", *HOSTILE])
    check = flow([PY, "-c", RECORD_ARGV, "verify-argv.json", *HOSTILE])
    probe = flow([PY, "-c", RECORD_ARGV, "probe-argv.json", *HOSTILE])
    write_environment(
        ws,
        f"[{{run: {hook}}}]",
        f"[{{run: {check}}}]",
        f"[{{type: command, run: {probe}}}, {{type: deployment}}]",
    )
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert ws.run("health").code == 0
    release = ws.root / "deploy" / "prod" / "current"
    for recorded in (release / "build-argv.json", release / "verify-argv.json"):
        assert json.loads(recorded.read_text()) == HOSTILE
    assert json.loads((ws.specs / "probe-argv.json").read_text()) == HOSTILE
    assert not list(ws.root.rglob("pwned*"))
    # A shell command line as the program's name is a program that does not exist.
    write_environment(
        ws, "[]", '[{run: ["touch pwned-line && true"]}]', '[{type: command, run: ["echo $(id)"]}]'
    )
    health = json.loads(ws.run("health", "--json").stdout)
    (row,) = health["resources"]
    assert any("cannot run echo $(id)" in c["message"] for c in row["checks"]), row
    assert not list(ws.root.rglob("pwned*"))


def test_a_hook_a_verify_check_and_a_health_check_die_at_their_timeout_with_their_children(
    ws: Workspace, app: WorkRepo
) -> None:
    def hanging(name: str) -> str:
        return f"[{{run: {flow([PY, '-c', SPAWN_AND_HANG, str(ws.root / name)])}, timeout: 1s}}]"

    write_environment(ws, hanging("build.pid"), "[]", "[{type: drift}]")
    started = time.monotonic()
    built = ws.run("apply", "--yes")
    assert built.code == 1 and "timed out after 1s" in built.output, built.output
    assert time.monotonic() - started < 30
    write_environment(ws, "[]", hanging("verify.pid"), "[{type: drift}]")
    verified = ws.run("apply", "--yes")
    assert verified.code == 1 and "timed out after 1s" in verified.output, verified.output
    probe = f"[{{type: command, {hanging('probe.pid')[2:-2]}}}]"
    write_environment(ws, "[]", "[]", probe)
    started = time.monotonic()
    health = json.loads(ws.run("health", "--json").stdout)
    assert time.monotonic() - started < 30
    assert any("timed out after 1s" in c["message"] for c in health["resources"][0]["checks"])
    deadline = time.monotonic() + 10
    pids = [int((ws.root / f"{n}.pid").read_text()) for n in ("build", "verify", "probe")]
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], "a hook's child outlived its timeout"


class Watcher:
    """`reconciler watch` with a JSON log; stopped with SIGTERM."""

    def __init__(self, ws: Workspace, *args: str, env: dict[str, str] | None = None) -> None:
        self.log = ws.root / f"watch-{time.monotonic_ns()}.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        self.sink = self.log.open("w")
        self.process = subprocess.Popen(
            [PY, "-m", "reconciler", "watch", "--interval", "10m", "--log-format", "json", *args],
            cwd=ws.root,
            env={**environment, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.sink,
        )

    def events(self, name: str) -> list[dict[str, object]]:
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [line for line in lines if line.get("event") == name]

    def wait_until(self, condition: Callable[[], object], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.sink.close()


@pytest.fixture
def watchers(ws: Workspace) -> Iterator[Callable[..., Watcher]]:
    started: list[Watcher] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Watcher:
        watcher = Watcher(ws, *args, env=env)
        started.append(watcher)
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def mirror_spec(ws: Workspace) -> None:
    seed_bare(ws.root / "src.git", commits=1)
    ws.write_spec(
        "m.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: m}
        spec:
          source: {url: ../src.git}
          destinations: [{url: ../dst.git}]
        """,
    )


def post(port: int, headers: dict[str, str], path: str = "/hooks/reconcile") -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=b"{}", method="POST", headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def outside_addresses() -> list[str]:
    """This machine's non-loopback IPv4 addresses (empty when it has none)."""
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only picks a source address
            found.add(probe.getsockname()[0])
        except OSError:
            pass
    return [a for a in found if not a.startswith("127.")]


def test_watch_listens_on_loopback_unless_told_otherwise(
    ws: Workspace, watchers: Callable[..., Watcher]
) -> None:
    mirror_spec(ws)
    port = free_port()
    implicit = watchers("--listen", f":{port}")  # a port alone: loopback
    implicit.wait_until(lambda: implicit.events("watching"))
    assert implicit.events("watching")[0]["listen"] == f"127.0.0.1:{port}"
    for address in outside_addresses():
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
            pass
    implicit.stop()
    with socket.socket() as probe:  # the default port, if nothing else holds it
        try:
            probe.bind(("0.0.0.0", 8765))
        except OSError:
            pytest.skip("port 8765 is taken on this machine: the default cannot be tried")
    default = watchers()
    default.wait_until(lambda: default.events("watching"))
    assert default.events("watching")[0]["listen"] == "127.0.0.1:8765"


def test_a_webhook_without_the_shared_secret_is_refused_and_triggers_nothing(
    ws: Workspace, watchers: Callable[..., Watcher]
) -> None:
    mirror_spec(ws)
    port = free_port()
    secret = "webhook-shared-secret-value"
    watcher = watchers("--listen", f"127.0.0.1:{port}", env={"RECONCILER_WEBHOOK_SECRET": secret})
    watcher.wait_until(lambda: watcher.events("reconcile"))  # the one at start
    refused = [
        post(port, {}),
        post(port, {"X-Reconciler-Secret": ""}),
        post(port, {"X-Reconciler-Secret": "wrong"}),
        post(port, {"X-Reconciler-Secret": secret + "x"}),
        post(port, {"X-Reconciler-Secret": secret[:-1]}),
        post(port, {"Authorization": f"Bearer {secret}"}),  # the secret, in the wrong header
    ]
    assert refused == [401] * len(refused)
    time.sleep(1.5)  # long enough for a triggered reconcile to start and log
    assert len(watcher.events("reconcile")) == 1, watcher.log.read_text()
    assert post(port, {"X-Reconciler-Secret": secret}) == 202
    watcher.wait_until(lambda: len(watcher.events("reconcile")) == 2)
    assert watcher.events("reconcile")[-1]["trigger"] == "webhook"
    watcher.stop()
    assert secret not in watcher.log.read_text()
