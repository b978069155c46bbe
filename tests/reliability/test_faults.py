"""Faults of a git server (issue 6): stopped, slowed, or dropping connections mid-push.

A real `git daemon` and a real `git http-backend` on 127.0.0.1 sit behind a real TCP proxy
(tests/faultproxy.py) that cuts or delays connections. Next to the remote mirror, several
mirrors to local destinations must succeed whatever the server does. After each fault the
server comes back, and a re-run must converge with an empty next plan.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import CliResult, Workspace
from tests.faultproxy import FaultProxy
from tests.gitservers import GitDaemon, GitHttpServer, WorkRepo, make_bare, refs_of
from tests.reliability.report import record
from tests.reliability.scale import size

PASSWORD = "fault-sentinel-token"  # must never show in any output
ENV = {"FAULT_TOKEN": PASSWORD}
# A pushed pack is ~200 KB of random data; a ref listing or a push's ref commands stay far
# below this, so a cut at this many uploaded bytes lands in the middle of the pack.
CUT_AT = 8_000
WATCH = [sys.executable, "-m", "reconciler", "watch", "--listen", "off"]


@dataclass
class Figures:
    """What one transport's run injected and saw."""

    faults_injected: int = 0
    failed_clearly: int = 0
    retried: int = 0
    others_succeeded: int = 0
    converged: int = 0
    rounds: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class World:
    """A source, `others` mirrors to local destinations, and one mirror to the server."""

    ws: Workspace
    source: Path
    work: WorkRepo
    others: list[Path]
    remote_url: str  # the destination as reconciler sees it (through the proxy)
    served: Path  # the same repository on disk

    def add_commit(self, label: str) -> None:
        """A new commit with a big incompressible file, so its push is cut mid-pack."""
        self.work.commit(label, {f"{label}.bin": os.urandom(200_000)})
        self.work.push(self.source, "main:main")

    def apply(self) -> CliResult:
        return self.ws.run("apply", "--yes", env=ENV)

    def line(self, result: CliResult, address: str) -> str:
        """The output line of the remote mirror's action."""
        lines = [ln for ln in result.stdout.splitlines() if ln.startswith(("ok ", "failed "))]
        found = [ln for ln in lines if f" {address} {self.remote_url}:" in ln]
        assert len(found) == 1, result.output
        return found[0]

    def journal_attempts(self) -> list[int]:
        """Attempts of the remote destination's actions in the last revision."""
        with closing(sqlite3.connect(f"file:{self.ws.state}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT attempts FROM journal WHERE unit = ? AND revision_id = "
                "(SELECT MAX(id) FROM revisions)",
                (self.remote_url,),
            ).fetchall()
        return [r[0] for r in rows]

    def assert_others_in_sync(self) -> int:
        want = refs_of(self.source)
        for dest in self.others:
            assert refs_of(dest) == want, dest
        return len(self.others)

    def assert_converged(self) -> None:
        again = self.apply()
        assert again.code == 0, again.output
        plan = self.ws.run("plan", "--detailed-exitcode", env=ENV)
        assert plan.code == 0, plan.output
        assert refs_of(self.served) == refs_of(self.source)


def _clean(result: CliResult) -> None:
    """What every faulty run must never show: a traceback or the credential."""
    assert "Traceback" not in result.output
    assert "internal error" not in result.output
    assert PASSWORD not in result.output


def _world(ws: Workspace, remote_url: str, served: Path, auth: bool) -> World:
    source = make_bare(ws.root / "src.git")
    work = WorkRepo.create(ws.root / "work", source)
    others = [ws.root / "local" / f"dst{i}.git" for i in range(size(3, 6))]
    credentials = ', username: bot, password: "${FAULT_TOKEN}"' if auth else ""
    documents = [
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: remote}}
        spec:
          source: {{url: {source}}}
          destinations:
            - {{url: "{remote_url}"{credentials}}}
        """
    ]
    documents += [
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: local-{i}}}
        spec:
          source: {{url: {source}}}
          destinations: [{{url: {dest}}}]
        """
        for i, dest in enumerate(others)
    ]
    ws.write_spec("mirrors.yaml", "---\n".join(documents))
    world = World(ws, source, work, others, remote_url, served)
    world.add_commit("c0")
    return world


@contextmanager
def _served(kind: str, root: Path) -> Iterator[tuple[GitDaemon | GitHttpServer, Path]]:
    root.mkdir()
    served = make_bare(root / "dst.git")
    server: GitDaemon | GitHttpServer
    if kind == "daemon":
        server = GitDaemon(root)
    else:
        server = GitHttpServer(root, username="bot", password=PASSWORD)
    with server:
        yield server, served


def _url(kind: str, port: int) -> str:
    scheme = "git" if kind == "daemon" else "http"
    return f"{scheme}://127.0.0.1:{port}/dst.git"


def _cut_every_push(world: World, proxy: FaultProxy, figures: Figures, round_: int) -> None:
    """Every push is dropped mid-pack: the remote fails after its retries, the rest succeed."""
    world.add_commit(f"cut{round_}")
    proxy.cut_after(CUT_AT)
    started = time.monotonic()
    result = world.apply()
    elapsed = time.monotonic() - started
    proxy.passing()
    _clean(result)
    assert result.code == 1, result.output
    line = world.line(result, "Mirror/remote")
    assert line.startswith("failed "), line
    assert "hung up" in line or "disconnect" in line, line
    assert line.count("after 3 attempts") == 1, line
    assert world.journal_attempts() == [3]
    assert proxy.cuts >= 3
    # Backoff: 0.5 s and 1 s (each ±20%) between the three attempts.
    assert elapsed >= 1.2, elapsed
    figures.faults_injected += 3
    figures.failed_clearly += 1
    figures.retried += 1
    figures.others_succeeded += world.assert_others_in_sync()
    world.assert_converged()
    figures.converged += 1


def _cut_one_push(world: World, proxy: FaultProxy, figures: Figures, round_: int) -> None:
    """One push dropped: the retry succeeds within the same apply."""
    world.add_commit(f"once{round_}")
    proxy.cut_after(CUT_AT, times=1)
    result = world.apply()
    proxy.passing()
    _clean(result)
    assert result.code == 0, result.output
    line = world.line(result, "Mirror/remote")
    assert line.startswith("ok "), line
    assert proxy.cuts >= 1
    if world.remote_url.startswith("git://"):
        assert line.endswith("after 2 attempts"), line
        assert world.journal_attempts() == [2]
    else:
        # curl itself resends a request whose kept-alive connection died, so over HTTP the
        # drop may be absorbed before reconciler sees it; either way the apply succeeds.
        assert world.journal_attempts() in ([1], [2])
    figures.faults_injected += 1
    figures.retried += 1
    figures.others_succeeded += world.assert_others_in_sync()
    world.assert_converged()
    figures.converged += 1


def _slow(world: World, proxy: FaultProxy, figures: Figures, round_: int) -> None:
    """A slow server (20 ms per chunk each way) is waited for, not given up on."""
    world.add_commit(f"slow{round_}")
    proxy.delay(0.02)
    before = proxy.connections
    result = world.apply()
    proxy.passing()
    _clean(result)
    assert result.code == 0, result.output
    assert world.line(result, "Mirror/remote").startswith("ok ")
    assert world.journal_attempts() == [1]
    assert proxy.connections > before
    figures.faults_injected += 1
    figures.others_succeeded += world.assert_others_in_sync()
    world.assert_converged()
    figures.converged += 1


def _stopped(
    world: World,
    server: GitDaemon | GitHttpServer,
    proxy: FaultProxy,
    figures: Figures,
    round_: int,
) -> None:
    """The server is down: the remote is blocked naming its URL; the others are applied."""
    world.add_commit(f"stop{round_}")
    server.stop()
    proxy.refuse()  # the address the specs name refuses connections, as a stopped server's
    try:
        result = world.apply()
    finally:
        server.start()
        proxy.listen()
    _clean(result)
    assert result.code == 1, result.output
    blocked = [ln for ln in result.stdout.splitlines() if ln.startswith("blocked Mirror/remote:")]
    assert len(blocked) == 1, result.output
    assert world.remote_url in blocked[0] and "refused" in blocked[0].lower(), blocked[0]
    assert "Max retries" not in blocked[0] and "HTTPConnection" not in blocked[0], blocked[0]
    figures.faults_injected += 1
    figures.failed_clearly += 1
    figures.others_succeeded += world.assert_others_in_sync()
    world.assert_converged()
    figures.converged += 1


@pytest.mark.parametrize("kind", ["daemon", "http"])
def test_server_faults_fail_clearly_spare_the_others_and_converge(
    ws: Workspace, tmp_path: Path, kind: str
) -> None:
    started = time.monotonic()
    figures = Figures()
    with _served(kind, tmp_path / "served") as (server, served), FaultProxy(server.port) as proxy:
        world = _world(ws, _url(kind, proxy.port), served, auth=kind == "http")
        first = world.apply()
        assert first.code == 0, first.output
        for round_ in range(size(1, 3)):
            _cut_every_push(world, proxy, figures, round_)
            _cut_one_push(world, proxy, figures, round_)
            _slow(world, proxy, figures, round_)
            _stopped(world, server, proxy, figures, round_)
            proxy.upstream_port = server.port  # a restarted server keeps its port
            figures.rounds += 1
    record(
        f"faults: git server ({'git daemon' if kind == 'daemon' else 'http-backend'})",
        time.monotonic() - started,
        faults_injected=figures.faults_injected,
        failed_clearly=figures.failed_clearly,
        retried=figures.retried,
        others_succeeded=figures.others_succeeded,
        converged=figures.converged,
        rounds=figures.rounds,
    )


def test_watch_retries_with_backoff_until_a_stopped_server_is_back(
    ws: Workspace, tmp_path: Path
) -> None:
    with _served("daemon", tmp_path / "served") as (server, served):
        world = _world(ws, _url("daemon", server.port), served, auth=False)
        server.stop()
        log = tmp_path / "watch.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        with log.open("w") as sink:
            watcher = subprocess.Popen(
                [*WATCH, "--interval", "5m", "--log-format", "json"],
                cwd=ws.root,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            failures = _wait_for(log, lambda e: e.get("outcome") == "failed", count=2)
            server.start()
            _wait_for(log, lambda e: e.get("event") == "reconcile" and e["outcome"] == "success")
        finally:
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=30)
        assert watcher.returncode == 0, log.read_text()
        assert "Traceback" not in log.read_text()
        # The second failure came after a backoff of about 2 s, not at once.
        assert failures[1]["_seen"] - failures[0]["_seen"] >= 1.5
        assert any(world.remote_url in json.dumps(f) for f in failures)
        world.assert_others_in_sync()
        assert refs_of(served) == refs_of(world.source)
        plan = ws.run("plan", "--detailed-exitcode")
        assert plan.code == 0, plan.output


def _wait_for(log: Path, match: object, count: int = 1, timeout: float = 60) -> list[dict]:
    """Log events of a watch process matching `match`, each stamped with when it was seen."""
    assert callable(match)
    seen: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = []
        for number, text in enumerate(log.read_text().splitlines()):
            try:
                event = json.loads(text)
            except ValueError:
                continue
            if isinstance(event, dict) and match(event):
                event["_seen"] = seen.setdefault(number, time.monotonic())
                events.append(event)
        if len(events) >= count:
            return events
        time.sleep(0.05)
    raise AssertionError(f"no {count} matching events in {timeout}s:\n{log.read_text()}")


def test_a_server_that_accepts_and_never_answers_fails_its_mirror_not_the_run(
    ws: Workspace, tmp_path: Path
) -> None:
    """A stalled server (the connection is accepted, no byte ever comes back) must not hang
    plan or apply: its mirrors fail after the network timeout, the others are applied."""
    started = time.monotonic()
    with socket.create_server(("127.0.0.1", 0)) as stalled:  # listens, never accepts
        port = stalled.getsockname()[1]
        stalled_urls = [f"git://127.0.0.1:{port}/dst.git", f"http://127.0.0.1:{port}/dst.git"]
        world = _world(ws, stalled_urls[0], tmp_path / "unused", auth=False)
        spec = ws.root / "specs" / "mirrors.yaml"
        spec.write_text(
            spec.read_text().replace(
                f'- {{url: "{stalled_urls[0]}"}}',
                f'- {{url: "{stalled_urls[0]}"}}\n    - {{url: "{stalled_urls[1]}"}}',
            )
        )
        env = {"RECONCILER_NETWORK_TIMEOUT": "2"}
        plan = ws.run("plan", env=env, timeout=60)
        result = ws.run("apply", "--yes", env=env, timeout=60)
    _clean(plan)
    _clean(result)
    assert result.code == 1, result.output
    blocked = [ln for ln in result.stdout.splitlines() if ln.startswith("blocked Mirror/remote:")]
    assert len(blocked) == 2, result.output
    for url in stalled_urls:
        (line,) = [ln for ln in blocked if f" {url}:" in ln]
        assert "no answer within 2 s" in line, line
    others = world.assert_others_in_sync()
    record(
        "faults: stalled git server",
        time.monotonic() - started,
        stalled_transports=2,
        failed_clearly=len(blocked),
        others_succeeded=others,
    )
