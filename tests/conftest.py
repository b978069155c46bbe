"""Shared fixtures: run the real CLI in a subprocess against a workspace of real repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.gitservers import GitDaemon, GitHttpServer, seed_bare

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CliResult:
    """What a `reconciler` process did."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for assertions that do not care which."""
        return self.stdout + self.stderr


@dataclass
class Workspace:
    """A temporary directory with `specs/`, `state/`, and room for repositories."""

    root: Path

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def state(self) -> Path:
        return self.root / "state" / "reconciler.db"

    def write_spec(self, name: str, text: str) -> Path:
        """Write `specs/NAME` (dedented)."""
        path = self.specs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        stdin: str | None = None,
    ) -> CliResult:
        """Run `python -m reconciler ARGS` in the workspace (no terminal: pipes)."""
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        environment.update(env or {})
        process = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        return CliResult(process.returncode, process.stdout, process.stderr)


def core_mirror(ws: Workspace, **seed: Any) -> Path:
    """A seeded bare `src.git` and the spec `Mirror/core` backing it up to `backup.git`
    (`seed`: seed_bare's branches, tags...); returns the source."""
    source = ws.root / "src.git"
    seed_bare(source, **seed)
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: core}}
        spec:
          source: {{url: {source}}}
          destinations: [{{url: {ws.root / "backup.git"}}}]
        """,
    )
    return source


def ok(result: CliResult, code: int = 0) -> CliResult:
    """Assert the exit code and that no traceback was printed."""
    assert result.code == code, f"exit {result.code} != {code}\n{result.output}"
    assert "Traceback" not in result.output, result.output
    return result


def status_row(ws: Workspace, address: str) -> dict[str, Any]:
    """The row of `status --json` for `address`."""
    rows = {row["address"]: row for row in json.loads(ws.run("status", "--json").stdout)}
    return rows[address]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A fresh workspace; commands run with it as the working directory."""
    (tmp_path / "specs").mkdir()
    return Workspace(tmp_path)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[GitDaemon]:
    """`git daemon` on 127.0.0.1 serving tmp_path/daemon (push enabled)."""
    root = tmp_path / "daemon"
    root.mkdir()
    with GitDaemon(root) as server:
        yield server


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[GitHttpServer]:
    """`git http-backend` on 127.0.0.1 serving tmp_path/http; Basic auth bot / s3cret-token."""
    root = tmp_path / "http"
    root.mkdir()
    with GitHttpServer(root, username="bot", password="s3cret-token") as server:
        yield server
