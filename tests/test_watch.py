"""`reconciler watch` as a real process: spec edits, webhooks, spec commits, /metrics,
/healthz, merged triggers, a broken spec, SIGTERM in the middle of an apply, --once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Workspace
from tests.gitservers import WorkRepo, free_port, refs_of, seed_bare
from tests.receivers import Receiver
from tests.test_environment import app, current, served  # noqa: F401 (fixture)
from tests.test_health import deploy_a_broken_release

SECRET = "hook-s3cret-value"


class Watch:
    """A `reconciler watch` subprocess with its log in a file."""

    def __init__(
        self,
        ws: Workspace,
        *args: str,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.log = ws.root / "watch.log"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        environment.update(env or {})
        command = [
            sys.executable,
            "-m",
            "reconciler",
            *args,
            "watch",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--interval",
            "10m",
            *extra,
        ]
        self.sink = self.log.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=ws.root,
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=self.sink,
        )
        self.wait_until(lambda: 'event": "watching' in self.text() or " watching " in self.text())

    def text(self) -> str:
        return self.log.read_text()

    def lines(self, event: str) -> list[str]:
        return [line for line in self.text().splitlines() if f" {event} " in line]

    def wait_until(self, condition: Callable[[], object], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.process.poll() is None, self.text()
            assert time.monotonic() < deadline, f"timed out; log:\n{self.text()}"
            time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=20)
        self.sink.close()
        return code


@pytest.fixture
def watching(ws: Workspace) -> Iterator[Callable[..., Watch]]:
    started: list[Watch] = []

    def start(*args: str, env: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> Watch:
        watch = Watch(ws, *args, env=env, extra=extra)
        started.append(watch)
        return watch

    yield start
    for watch in started:
        if watch.process.poll() is None:
            watch.process.kill()
            watch.process.wait()
        watch.sink.close()


def mirror(ws: Workspace, name: str, branches: str = '["*"]') -> None:
    ws.write_spec(
        f"{name}.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: {name}}}
        spec:
          source: {{url: ../src/core.git}}
          destinations: [{{url: ../dst/{name}.git}}]
          branches: {branches}
        """,
    )


def post(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def lock_free(ws: Workspace) -> bool:
    with sqlite3.connect(ws.state) as db:
        return db.execute("SELECT COUNT(*) FROM lock").fetchone()[0] == 0


def test_edits_webhooks_metrics_and_sigterm(ws: Workspace, watching: Callable[..., Watch]) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main", "dev"), commits=1)
    mirror(ws, "one")
    watch = watching(env={"RECONCILER_WEBHOOK_SECRET": SECRET})
    dst = ws.root / "dst"
    watch.wait_until(lambda: (dst / "one.git" / "HEAD").exists() and refs_of(dst / "one.git"))

    mirror(ws, "two", '["main"]')  # a new spec file is applied
    watch.wait_until(lambda: (dst / "two.git" / "HEAD").exists() and refs_of(dst / "two.git"))
    assert list(refs_of(dst / "two.git")) == ["refs/heads/main"]
    before = len(watch.lines("reconcile"))
    for _ in range(5):  # a burst of saves: merged, not five reconciles
        mirror(ws, "two", '["main", "dev"]')
    watch.wait_until(lambda: "refs/heads/dev" in refs_of(dst / "two.git"))
    time.sleep(0.3)
    assert len(watch.lines("reconcile")) - before <= 2, watch.text()

    assert post(watch.url("/hooks/reconcile")) == 401
    assert post(watch.url("/hooks/reconcile"), {"X-Reconciler-Secret": "wrong"}) == 401
    count = len(watch.lines("reconcile"))
    assert post(watch.url("/hooks/reconcile"), {"X-Reconciler-Secret": SECRET}) == 202
    watch.wait_until(lambda: len(watch.lines("reconcile")) > count)
    assert "trigger=webhook" in watch.lines("reconcile")[-1]
    assert post(watch.url("/elsewhere")) == 404

    families = {f.name: f for f in text_string_to_metric_families(get(watch.url("/metrics")))}
    reconciles = families["reconciler_reconciles"].samples
    assert any(s.labels == {"outcome": "success"} and s.value >= 3 for s in reconciles)
    actions = families["reconciler_actions"].samples
    assert any(s.labels == {"outcome": "done"} and s.value >= 3 for s in actions)
    assert families["reconciler_last_success_timestamp_seconds"].samples[0].value > 0
    assert json.loads(get(watch.url("/healthz")))["outcome"] == "success"

    assert watch.stop() == 0
    assert SECRET not in watch.text()
    assert lock_free(ws) and " stopped" in watch.text()
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_a_broken_spec_keeps_the_last_good_state_running(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror(ws, "one")
    watch = watching("--specs", "specs")
    watch.wait_until(lambda: watch.lines("reconcile"))
    ws.write_spec("broken.yaml", "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: x}\n")
    watch.wait_until(lambda: "outcome=invalid" in watch.text())
    assert "specs/broken.yaml:1" in watch.text()
    assert json.loads(get(watch.url("/healthz")))["outcome"] == "invalid"
    (ws.specs / "broken.yaml").unlink()
    mirror(ws, "three")
    watch.wait_until(lambda: (ws.root / "dst" / "three.git" / "HEAD").exists())
    assert watch.stop() == 0


def committed_mirror(ws: Workspace, name: str) -> str:
    """A mirror spec of src/core.git to dst/NAME.git for a specs repository (absolute paths:
    the spec file lives in git, not beside the workspace)."""
    return (
        f"apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {{name: {name}}}\n"
        f"spec:\n  source: {{url: {ws.root}/src/core.git}}\n"
        f"  destinations: [{{url: {ws.root}/dst/{name}.git}}]\n"
    )


def test_a_new_commit_of_the_specs_repository_is_applied(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    infra = WorkRepo.create(ws.root / "infra")
    infra.commit("one", {"specs/one.yaml": committed_mirror(ws, "one")})
    source = f"file://{infra.path}#HEAD:specs"
    watch = watching("--specs", source)
    watch.wait_until(lambda: (ws.root / "dst" / "one.git" / "HEAD").exists())
    infra.commit("two", {"specs/two.yaml": committed_mirror(ws, "two")})
    assert watch.stop() == 0
    watch = watching("--specs", source, extra=("--poll", "1s"))
    watch.wait_until(lambda: (ws.root / "dst" / "two.git" / "HEAD").exists())
    infra.commit("three", {"specs/three.yaml": committed_mirror(ws, "three")})
    watch.wait_until(lambda: "trigger=commit outcome=success" in watch.text(), timeout=40)
    assert refs_of(ws.root / "dst" / "three.git")
    assert watch.stop() == 0


def test_a_broken_spec_commit_is_reported_by_status_until_a_good_one_lands(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    infra = WorkRepo.create(ws.root / "infra")
    good = committed_mirror(ws, "one")
    infra.commit("good", {"specs/one.yaml": good})
    infra.tag("good")
    source = f"file://{infra.path}#HEAD:specs"
    watch = watching("--specs", source, extra=("--poll", "1s"))
    watch.wait_until(lambda: (ws.root / "dst" / "one.git" / "HEAD").exists())
    assert "warning" not in ws.run("--specs", source, "status").stderr
    infra.commit("broken", {"specs/one.yaml": good.replace("destinations", "destination")})
    watch.wait_until(lambda: "outcome=invalid" in watch.text(), timeout=40)
    # A person looking at the resources (here through the last good commit) is told.
    status = ws.run("--specs", f"file://{infra.path}#good:specs", "status", "--json")
    assert status.code == 0 and json.loads(status.stdout)[0]["sync"] == "Synced"
    broken = infra.rev("HEAD")[:7]
    assert f"watch: reconcile invalid: file://{infra.path}@{broken}:specs/one.yaml:4:" in (
        status.stderr
    ), status.stderr
    assert "spec.destination: unknown field" in status.stderr
    assert "the last good state keeps running" in status.stderr
    assert refs_of(ws.root / "dst" / "one.git") == refs_of(ws.root / "src" / "core.git")
    infra.commit("fixed", {"specs/one.yaml": good})
    watch.wait_until(lambda: "trigger=commit outcome=success" in watch.text(), timeout=40)
    assert "warning" not in ws.run("--specs", source, "status").stderr
    assert ws.run("--specs", source, "plan", "--detailed-exitcode").code == 0
    assert watch.stop() == 0


def test_sigterm_during_an_apply_finishes_it_and_releases_the_lock(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    repo = WorkRepo.create(ws.root / "app")
    repo.commit("v1", {"VERSION": "v1\n"})
    ws.write_spec(
        "env.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: staging}}
        spec:
          source: {{repo: ../app, ref: main}}
          target: {{path: ../deploy/staging}}
          build: [{{run: ["{sys.executable}", "-c", "import time; time.sleep(2)"]}}]
        """,
    )
    watch = watching()
    watch.wait_until(lambda: (ws.root / "deploy" / "staging" / "releases").exists())
    started = time.monotonic()
    assert watch.stop() == 0
    assert time.monotonic() - started < 10
    assert (ws.root / "deploy" / "staging" / "current").exists()  # the action finished
    assert lock_free(ws)
    with sqlite3.connect(ws.state) as db:
        statuses = {r[0] for r in db.execute("SELECT status FROM journal")}
        outcomes = {r[0] for r in db.execute("SELECT outcome FROM revisions")}
    assert statuses == {"done"} and outcomes == {"success"}
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_once_runs_one_cycle_with_health(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror(ws, "one")
    ws.write_spec(
        "policy.yaml",
        """
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {name: all}
        spec:
          selector: {kinds: [Mirror]}
          checks: [{type: drift}]
        """,
    )
    result = ws.run("watch", "--once", "--log-format", "json")
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stderr.splitlines()]
    assert [e["event"] for e in events] == ["action", "reconcile", "health"]
    assert events[2]["resources"] == {"Mirror/one": "Healthy"}
    assert Path(ws.root / "dst" / "one.git" / "HEAD").exists()


def test_the_status_warning_lasts_until_specs_load_and_run_again(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    ws.write_spec("one.yaml", "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: x}\n")
    assert ws.run("watch", "--once", "--listen", "off").code == 1  # could not reconcile
    blocker = ws.root / "dst" / "one.git"
    blocker.parent.mkdir()
    blocker.write_text("not a repository\n")
    (ws.specs / "one.yaml").unlink()
    mirror(ws, "one")  # valid now, though its destination will fail
    warned = ws.run("status")
    assert "warning: watch: reconcile invalid:" in warned.stderr, warned.output
    assert ws.run("apply", "--yes").code == 1  # loaded and ran; its action failed
    assert "warning" not in ws.run("status").stderr


def test_drift_policy_decides_what_the_interval_corrects(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    seed_bare(ws.root / "source.git", branches=("main", "dev"))
    for name, policy in (("fixed", "correct"), ("watched", "warn")):
        ws.write_spec(
            f"{name}.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: Mirror
            metadata: {{name: {name}, driftPolicy: {policy}}}
            spec:
              source: {{url: ../source.git}}
              destinations: [{{url: ../{name}.git}}]
            """,
        )
    assert ws.run("apply", "--yes").code == 0
    for name in ("fixed", "watched"):  # drift: a branch deleted by hand downstream
        subprocess.run(
            ["git", "update-ref", "-d", "refs/heads/dev"], cwd=ws.root / f"{name}.git", check=True
        )
    watch = watching(extra=("--interval", "1s"))
    watch.wait_until(lambda: "refs/heads/dev" in refs_of(ws.root / "fixed.git"), timeout=30)
    watch.wait_until(lambda: "drift not corrected (driftPolicy warn)" in watch.text(), timeout=30)
    assert "refs/heads/dev" not in refs_of(ws.root / "watched.git")  # only reported
    assert watch.stop() == 0


def test_watch_retries_escalates_once_and_records_recovery(
    ws: Workspace, watching: Callable[..., Watch]
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    blocker = ws.root / "dst" / "one.git"
    blocker.parent.mkdir()
    blocker.write_text("not a repository\n")  # the destination is broken
    mirror(ws, "one")
    with Receiver() as receiver:
        ws.write_spec(
            "policy.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: HealthPolicy
            metadata: {{name: mirrors}}
            spec:
              selector: {{kinds: [Mirror]}}
              interval: 1s
              checks: [{{type: drift}}]
              remediation:
                - retry: {{attempts: 3, base: 1s, factor: 1}}
                - escalate: {{webhook: "{receiver.url}"}}
            """,
        )
        watch = watching(extra=("--interval", "2s"))
        assert [b["event"] for b in receiver.wait_for(1)] == ["incident"], watch.text()
        assert len(attempts(ws, "retry", "failed")) == 3  # every retry before the alert
        time.sleep(3)  # health keeps ticking every second
        assert len(receiver.bodies) == 1, watch.text()  # one alert per incident, not per tick
        blocker.unlink()  # repaired: the interval reconcile corrects the drift
        assert [b["event"] for b in receiver.wait_for(2)] == ["incident", "recovered"]
        watch.wait_until(lambda: attempts(ws, "escalate", "recovered"))
    assert refs_of(ws.root / "dst" / "one.git") == refs_of(ws.root / "src" / "core.git")
    assert len(attempts(ws, "escalate", "done")) == 1
    with sqlite3.connect(ws.state) as db:
        assert db.execute("SELECT status FROM incidents").fetchall() == [("resolved",)]
    assert watch.stop() == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0


def attempts(ws: Workspace, step: str, outcome: str) -> list[tuple[int]]:
    """Remediation attempts of `step` with `outcome`, as the store recorded them."""
    with sqlite3.connect(ws.state) as db:
        query = "SELECT attempt FROM remediations WHERE step = ? AND outcome = ?"
        return db.execute(query, (step, outcome)).fetchall()


def test_watch_rolls_back_a_failing_deployment_once(
    ws: Workspace,
    app: WorkRepo,  # noqa: F811
    watching: Callable[..., Watch],
) -> None:
    port = deploy_a_broken_release(ws, interval="1s")
    watch = watching(extra=("--interval", "2s"))
    watch.wait_until(lambda: attempts(ws, "rollback", "done"), timeout=30)
    assert current(ws) == f"1-{app.rev('v1')[:7]}" and served(port) == "ok v1"
    time.sleep(4)  # health and reconciles keep ticking: neither deploys v3 again
    assert current(ws) == f"1-{app.rev('v1')[:7]}" and served(port) == "ok v1"
    with sqlite3.connect(ws.state) as db:
        rows = db.execute("SELECT step, subject FROM remediations").fetchall()
    assert rows == [("rollback", app.rev("v3^{commit}"))], watch.text()  # no rollback loop
    assert watch.stop() == 0
