"""HealthPolicy through the CLI: checks, statuses, remediation with backoff across processes,
one alert per incident and one on recovery, rollback by remediation without loops, metrics."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, Workspace
from tests.gitservers import WorkRepo, free_port, refs_of, seed_bare
from tests.receivers import Receiver
from tests.test_environment import app, current, env_spec, served  # noqa: F401 (fixture)

README = (ROOT / "README.md").read_text()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def mirror_spec(ws: Workspace, dest: str = "../dst/core.git") -> None:
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: core, labels: {{team: platform}}}}
        spec:
          source: {{url: ../src/core.git}}
          destinations: [{{url: {dest}}}]
        """,
    )


def policy_spec(ws: Workspace, checks: str, remediation: str = "[]", extra: str = "") -> None:
    ws.write_spec(
        "policy.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: platform}}
        spec:
          selector: {{labels: {{team: platform}}}}
          checks: {checks}
          remediation: {remediation}
        """
        + extra,
    )


def health(ws: Workspace) -> tuple[int, dict]:
    result = ws.run("health", "--json")
    return result.code, json.loads(result.stdout)


def test_statuses_from_missing_to_healthy_to_degraded(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror_spec(ws)
    policy_spec(ws, '[{type: syncLag, maxLag: 1h}, {type: drift}, {type: command, run: ["true"]}]')
    code, report = health(ws)
    assert code == 1 and report["status"] == "Missing"
    row = report["resources"][0]
    assert row["address"] == "Mirror/core" and row["failing"] == "applied"
    assert ws.run("apply", "--yes").code == 0
    code, report = health(ws)
    assert code == 0 and report["status"] == "Healthy", report
    row = report["resources"][0]
    assert [c["type"] for c in row["checks"]] == ["applied", "syncLag", "drift", "command"]
    assert row["lag_seconds"] == 0 and row["last_sync"] and row["issues"] == []

    work = WorkRepo.create(ws.root / "work")  # a new commit at the source: drift
    work.git("fetch", "-q", str(ws.root / "src" / "core.git"), "main")
    work.git("reset", "-q", "--hard", "FETCH_HEAD")
    work.commit("two")
    work.push(str(ws.root / "src" / "core.git"), "HEAD:refs/heads/main")
    code, report = health(ws)
    row = report["resources"][0]
    assert code == 1 and row["status"] == "Degraded" and row["failing"] == "drift"
    assert {c["type"]: c["status"] for c in row["checks"]}["syncLag"] == "Progressing"
    assert ws.run("plan", "--detailed-exitcode").code == 2  # health never applied anything


def test_http_and_command_checks_and_suspend(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror_spec(ws)
    port = free_port()
    policy_spec(
        ws,
        f'[{{type: http, url: "http://127.0.0.1:{port}/health", timeout: 2s}},'
        ' {type: command, run: ["sh", "-c", "exit 3"], timeout: 5s}]',
    )
    assert ws.run("apply", "--yes").code == 0
    code, report = health(ws)
    checks = {c["type"]: c for c in report["resources"][0]["checks"]}
    assert code == 1 and checks["http"]["status"] == "Degraded"
    assert "Connection refused" in checks["http"]["message"]
    assert checks["command"]["message"].startswith("sh exited 3")
    policy_spec(
        ws, '[{type: command, run: ["sleep", "30"], timeout: 1s}]', extra="  suspend: true\n"
    )
    started = time.monotonic()
    code, report = health(ws)
    assert code == 0 and report["resources"][0]["status"] == "Suspended"
    assert time.monotonic() - started < 15  # a suspended policy runs nothing
    text = ws.run("health")
    assert "Suspended" in text.stdout and "overall: Suspended" in text.stdout


def test_retry_with_backoff_escalates_once_and_alerts_recovery(
    ws: Workspace, receiver: Receiver
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    blocker = ws.root / "dst" / "core.git"
    blocker.parent.mkdir()
    blocker.write_text("not a repository\n")  # the destination is broken
    mirror_spec(ws)
    alerts = ws.root / "alerts.jsonl"
    policy_spec(
        ws,
        "[{type: drift}]",
        "[{retry: {attempts: 2, base: 5s, factor: 1}},"
        f' {{escalate: {{webhook: "{receiver.url}", file: ../alerts.jsonl}}}}]',
    )
    assert ws.run("apply", "--yes").code == 1
    first = ws.run("heal")
    assert first.code == 1 and "retry #1 failed" in first.stdout, first.output
    waiting = ws.run("heal")  # a new process: the backoff is in the store
    assert "retry #1 waiting: not before" in waiting.stdout, waiting.output
    second = heal_when_due(ws)
    assert "retry #2 failed" in second.stdout, second.output
    third = ws.run("heal")
    assert "escalate #1 done" in third.stdout, third.output
    for _ in range(2):  # exhausted: no alert per tick
        assert "exhausted" in ws.run("heal").stdout
    assert len(receiver.wait_for(1)) == 1
    alert = receiver.bodies[0]
    assert alert["event"] == "incident" and alert["address"] == "Mirror/core"
    assert alert["status"] == "Degraded" and alert["policy"] == "platform"

    blocker.unlink()  # someone repairs the destination and applies
    assert ws.run("apply", "--yes").code == 0
    recovered = ws.run("heal")
    assert "recover #0 recovered" in recovered.stdout, recovered.output
    assert [b["event"] for b in receiver.wait_for(2)] == ["incident", "recovered"]
    lines = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [a["event"] for a in lines] == ["incident", "recovered"]
    assert "nothing to heal" in ws.run("heal").stdout
    with sqlite3.connect(ws.state) as db:
        attempts = db.execute("SELECT step, outcome FROM remediations ORDER BY id").fetchall()
        incidents = db.execute("SELECT status FROM incidents").fetchall()
    assert attempts == [
        ("retry", "failed"),
        ("retry", "failed"),
        ("escalate", "done"),
        ("escalate", "recovered"),
    ]
    assert incidents == [("resolved",)]
    metrics = json.loads(ws.run("metrics", "--format", "json").stdout)
    assert metrics["remediation"] == {"total": 3, "success_rate": 0.3333}
    assert metrics["resources_by_health"] == {"Healthy": 1}


def heal_when_due(ws: Workspace, timeout: float = 20) -> object:
    """Run `heal` until it does more than wait (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        result = ws.run("heal")
        if "waiting" not in result.stdout or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_dry_run_lists_and_changes_nothing(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror_spec(ws)
    policy_spec(ws, "[{type: drift}]", "[{resync: {}}]")
    dry = ws.run("heal", "--dry-run", "--json")
    assert json.loads(dry.stdout) == [
        {
            "policy": "platform",
            "address": "Mirror/core",
            "step": "resync",
            "attempt": 1,
            "outcome": "due",
            "message": "never applied: 1 create, 1 init on 1 of 1 destinations",
        }
    ]
    assert not (ws.root / "dst" / "core.git").exists()
    healed = ws.run("heal")  # resync applies it
    assert "resync #1 done" in healed.stdout, healed.output
    assert refs_of(ws.root / "dst" / "core.git") == refs_of(ws.root / "src" / "core.git")
    assert "recovered" in ws.run("heal").stdout
    assert ws.run("plan", "--detailed-exitcode").code == 0


def deploy_a_broken_release(ws: Workspace, interval: str = "5m") -> int:
    """Staging runs v3 (its service answers 500) after v1, without autoRollback, under a
    policy that checks the deployment and rolls it back; returns the service's port."""
    port = free_port()
    env_spec(ws, ref="v1", port=port, extra="autoRollback: false")
    assert ws.run("apply", "--yes").code == 0
    env_spec(ws, ref="v3", port=port, extra="autoRollback: false")
    assert ws.run("apply", "--yes").code == 1
    assert "500" in served(port)  # without autoRollback the broken release stays
    ws.write_spec(
        "policy.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: deploys}}
        spec:
          selector: {{addresses: [Environment/staging]}}
          interval: {interval}
          checks: [{{type: deployment}}]
          remediation: [{{rollback: {{}}}}]
        """,
    )
    return port


def test_failing_deployment_is_rolled_back_once(ws: Workspace, app: WorkRepo) -> None:  # noqa: F811
    port = deploy_a_broken_release(ws)
    code, report = health(ws)
    row = report["resources"][0]
    assert code == 1 and row["failing"] == "deployment" and "status 500" in row["message"]
    healed = ws.run("heal")
    assert "rollback #1 done" in healed.stdout, healed.output
    assert current(ws) == f"1-{app.rev('v1')[:7]}" and served(port) == "ok v1"
    assert health(ws)[1]["status"] == "Healthy"
    assert "recovered" in ws.run("heal").stdout
    assert "pinned" in ws.run("plan").stdout  # the failed commit is not deployed again
    with sqlite3.connect(ws.state) as db:
        rows = db.execute("SELECT step, subject FROM remediations").fetchall()
    assert rows == [("rollback", app.rev("v3^{commit}"))]


def test_prometheus_metrics_parse(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    mirror_spec(ws)
    policy_spec(ws, "[{type: drift}]")
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("health").code == 0
    text = ws.run("metrics").stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["reconciler_sync_success_ratio"].samples[0].value == 1.0
    resources = families["reconciler_resources"].samples
    assert [(s.labels, s.value) for s in resources] == [({"health": "Healthy"}, 1.0)]


def test_the_readme_example_validates(ws: Workspace) -> None:
    example = README.split("### HealthPolicy\n\n```yaml\n", 1)[1].split("```", 1)[0]
    ws.write_spec("policy.yaml", example)
    (ws.root / "src").mkdir()
    result = ws.run("validate")
    assert result.code == 0, result.output
    assert Path(ws.specs).exists()
