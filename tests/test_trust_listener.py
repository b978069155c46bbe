"""Issue 12, items 16 and 17: the webhook listener of a real `reconciler watch --listen`
cannot be flooded or starved, and output from hooks never drives the terminal."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.watch.listener import MAX_CONNECTIONS, REQUEST_TIMEOUT
from tests.conftest import Workspace
from tests.gitservers import WorkRepo, seed_bare
from tests.test_environment import app, env_spec  # noqa: F401 (fixture)
from tests.test_watch import SECRET, Watch, get, post, watching  # noqa: F401 (fixture)

CONTROL = ("\x1b", "\x07", "\x9b", "\r")


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send `request` as written over a plain socket; return everything answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(request)
        return read_all(conn)


def read_all(conn: socket.socket) -> bytes:
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def hook_post(length: str | None, secret: str | None = SECRET, body: bytes = b"") -> bytes:
    headers = ["POST /hooks/reconcile HTTP/1.1", "Host: 127.0.0.1"]
    if secret is not None:
        headers.append(f"X-Reconciler-Secret: {secret}")
    if length is not None:
        headers.append(f"Content-Length: {length}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.fixture
def listening(ws: Workspace, watching: Callable[..., Watch]) -> Watch:  # noqa: F811
    """A watcher with nothing to reconcile and a webhook secret."""
    return watching(env={"RECONCILER_WEBHOOK_SECRET": SECRET})


def test_content_length_is_validated_before_anything_is_read(listening: Watch) -> None:
    port = listening.port
    for length in ("-1", "abc", "1e3", " ", "+5"):
        answer = raw(port, hook_post(length))
        assert status_of(answer) == 400, (length, answer)
        assert b"Content-Length" in answer
    assert status_of(raw(port, hook_post(None))) == 400  # required on a POST
    assert status_of(raw(port, hook_post("1000001"))) == 413  # over the cap: never read
    assert status_of(raw(port, hook_post("2", secret="wrong", body=b"{}"))) == 401
    assert status_of(raw(port, hook_post("2", secret=None, body=b"{}"))) == 401
    assert status_of(raw(port, hook_post("2", body=b"{}"))) == 202
    assert "Traceback" not in listening.text()
    assert get(listening.url("/healthz"))  # still serving after every bad request
    assert listening.stop() == 0


def test_the_secret_is_checked_before_the_body_is_read(listening: Watch) -> None:
    """A wrong secret is answered at once, though the announced body never comes."""
    with socket.create_connection(("127.0.0.1", listening.port), timeout=10) as conn:
        conn.sendall(hook_post("500000", secret="wrong"))
        started = time.monotonic()
        answer = read_all(conn)
    assert status_of(answer) == 401
    assert time.monotonic() - started < 2


def test_a_flood_of_idle_connections_holds_no_thread_each(listening: Watch) -> None:
    pid = listening.process.pid
    before, files = proc_status(pid, "Threads"), len(os.listdir(f"/proc/{pid}/fd"))
    idle = [socket.create_connection(("127.0.0.1", listening.port)) for _ in range(500)]
    try:
        time.sleep(1)
        assert proc_status(pid, "Threads") <= before + 4
        assert len(os.listdir(f"/proc/{pid}/fd")) <= files + MAX_CONNECTIONS + 8  # bounded
        health = json.loads(get(listening.url("/healthz")))
        assert health["status"] == "ok"
        assert "reconciler_" in get(listening.url("/metrics"))
        assert post(listening.url("/hooks/reconcile"), {"X-Reconciler-Secret": SECRET}) == 202
    finally:
        for conn in idle:
            conn.close()
    assert listening.stop() == 0


def test_a_slow_connection_is_closed_after_the_timeout(listening: Watch) -> None:
    """Slowloris: a header line every half second never completes a request."""
    with socket.create_connection(("127.0.0.1", listening.port), timeout=2) as conn:
        conn.sendall(b"POST /hooks/reconcile HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < REQUEST_TIMEOUT + 10:
            try:
                conn.sendall(b"X-Slow: a\r\n")
                time.sleep(0.5)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        assert closed, "the server kept a slow connection open"
        assert REQUEST_TIMEOUT - 1 < time.monotonic() - started < REQUEST_TIMEOUT + 5
    assert get(listening.url("/healthz"))


def test_a_non_ascii_secret_matches_as_utf8(
    ws: Workspace,
    watching: Callable[..., Watch],  # noqa: F811
) -> None:
    secret = "schlüssel-ünïcødé"
    watch = watching(env={"RECONCILER_WEBHOOK_SECRET": secret})
    request = (
        b"POST /hooks/reconcile HTTP/1.1\r\nContent-Length: 0\r\n"
        b"X-Reconciler-Secret: " + secret.encode() + b"\r\n\r\n"
    )
    assert status_of(raw(watch.port, request)) == 202
    wrong = request.replace("ü".encode(), b"u", 1)
    assert status_of(raw(watch.port, wrong)) == 401
    latin1 = request.replace(secret.encode(), secret.encode("latin-1", errors="replace"))
    assert status_of(raw(watch.port, latin1)) == 401


def test_a_huge_body_is_never_buffered(listening: Watch) -> None:
    """200 MB behind `Content-Length: -1`: refused, and the server's memory stays put."""
    pid = listening.process.pid
    before = proc_status(pid, "VmRSS")
    sent = 0
    chunk = b"x" * (1 << 20)
    with socket.create_connection(("127.0.0.1", listening.port), timeout=10) as conn:
        conn.sendall(hook_post("-1"))
        try:
            while sent < 200 * len(chunk):
                conn.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 50 * len(chunk)  # the server closed the connection early
    assert proc_status(pid, "VmHWM") - before < 30_000  # kB
    assert get(listening.url("/healthz"))


# -- item 17: control characters -------------------------------------------------------------

NASTY = r"be\x1b]0;pwned\x07\x1b[2Jfo\u009b6nre\r!"
BUILD = (
    "build: [{run: ['PY', '-c', 'import sys; print(\"NASTY\"); "
    'sys.stderr.write("NASTY\\n"); sys.exit(3)\']}]'
)


@pytest.fixture
def nasty_build(ws: Workspace, app: WorkRepo) -> None:  # noqa: F811
    """An Environment whose build hook prints escape sequences (stdout and stderr) and fails."""
    env_spec(ws, extra=BUILD.replace("PY", sys.executable).replace("NASTY", NASTY))


def assert_clean(text: str, where: str) -> None:
    """No control character in `text`, nor in the strings of the JSON it may be."""
    for char in CONTROL:
        assert char not in text, f"{where} shows {char!r}: {text!r}"
    try:
        decoded = json.loads(text)
    except ValueError:
        return
    for value in strings(decoded):
        for char in CONTROL:
            assert char not in value, f"{where} has {char!r} in its JSON: {value!r}"


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings(k), *strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def test_hook_output_cannot_drive_the_terminal(ws: Workspace, nasty_build: None) -> None:
    applied = ws.run("apply", "--yes")
    assert applied.code == 1, applied.output
    assert_clean(applied.output, "apply")
    assert "exited 3: ...before!\nbefore!" in applied.stdout  # the text around them stays
    for command in (
        ("status",),
        ("status", "--json"),
        ("history",),
        ("history", "--json"),
        ("history", "Environment/staging"),
        ("history", "Environment/staging", "--json"),
        ("state", "show", "Environment/staging"),
        ("plan",),
        ("plan", "--json"),
    ):
        result = ws.run(*command)
        assert_clean(result.stdout, " ".join(command))
        assert_clean(result.stderr, " ".join(command))
    shown = json.loads(ws.run("history", "Environment/staging", "--json").stdout)
    assert any("before!" in value for value in strings(shown))
    with sqlite3.connect(ws.state) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f"SELECT * FROM {table}"):
                for value in row:
                    if isinstance(value, str):
                        assert_clean(value, f"the store's {table}")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_hook_output_cannot_drive_the_terminal_through_the_watch_log(
    ws: Workspace, nasty_build: None, log_format: str
) -> None:
    watched = ws.run("watch", "--once", "--log-format", log_format)
    assert watched.code == 1, watched.output
    assert "exited 3: ...before!" in watched.stderr  # logged, without its control bytes
    assert_clean(watched.stderr, "watch --once")
    assert "\\u001b" not in watched.stderr and "\\u009b" not in watched.stderr  # nor escaped


def test_text_from_outside_is_shown_as_written_not_as_emoji(ws: Workspace) -> None:
    """rich reads ':name:' as an emoji code: a repository path holding one stays as written."""
    seed_bare(ws.root / "source.git")
    ws.write_spec(
        "mirror.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: core}
        spec:
          source: {url: ../source.git}
          destinations: [{url: "../dst/:smile: :a b:.git"}]
        """,
    )
    for command in (("plan",), ("apply", "--yes")):  # both name the destination
        result = ws.run(*command)
        assert ":smile: :a b:.git" in result.stdout, result.output
        assert "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" not in result.stdout
