"""Running programs and probing URLs for hooks and checks: argument lists without a shell,
timeouts that kill the whole process group, output captured into a bounded tail, retries.

A program never inherits reconciler's environment (where credentials and the webhook
secret live): it gets the variables of `minimal_environment()` and what the caller passes.
It runs in its own session so that a timeout can kill its whole group; `stop_all()` does
the same when reconciler is told to stop (SIGTERM, SIGINT), and no program starts after it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from reconciler.redaction import minimal_environment

TAIL_BYTES = 4096

_running: dict[int, subprocess.Popen[bytes]] = {}  # programs now running, by process group
_stopping = threading.Event()


def stop_all() -> None:
    """Kill the process group of every program running now and let no new one start
    (called from a signal handler: services an activate hook detached into their own
    session are not in that group and keep running)."""
    _stopping.set()
    for group in list(_running):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)


@dataclass(frozen=True)
class Outcome:
    """How a program or probe went; `detail` ends with the tail of its output."""

    ok: bool
    detail: str
    final: bool = False  # a failure no retry can change (the program cannot even start)
    stopped: bool = False  # ended by stop_all(): says nothing about the release


def run(argv: Sequence[str], cwd: Path, timeout: timedelta, env: Mapping[str, str]) -> Outcome:
    """Run `argv` in `cwd` with the minimal environment and `env`; fail on exit != 0 or
    timeout."""
    if _stopping.is_set():
        detail = f"{argv[0]} not started: reconciler is stopping"
        return Outcome(False, detail, final=True, stopped=True)
    try:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**minimal_environment(), **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a timeout kills the program's children too
        )
    except OSError as error:
        return Outcome(False, f"cannot run {argv[0]}: {error.strerror or error}", final=True)
    _running[process.pid] = process
    try:
        return _finish(argv[0], timeout.total_seconds(), process)
    except BaseException:  # interrupted (KeyboardInterrupt from a signal): end the group
        _kill(process)
        raise
    finally:
        _running.pop(process.pid, None)


def _finish(name: str, seconds: float, process: subprocess.Popen[bytes]) -> Outcome:
    tail = _Tail(process)
    try:
        code = process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        _kill(process)
        tail.join()
        return Outcome(False, f"{name} timed out after {seconds:g}s{tail.text()}")
    tail.join()
    if _stopping.is_set():
        return Outcome(False, f"{name} stopped: reconciler is stopping", final=True, stopped=True)
    if code != 0:
        # 126/127: the shell could not run the command (not executable, not found)
        final = code in (126, 127)
        return Outcome(False, f"{name} exited {code}{tail.text()}", final=final)
    return Outcome(True, f"{name} ok")


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class _Tail:
    """Reads a process's output on a thread, keeping only the last TAIL_BYTES."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.buffer = bytearray()
        self.stream = process.stdout
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.stream is not None
        # The thread owns the pipe: it closes it at end of file, which a child left running
        # in the background (a service an activate hook started) may delay indefinitely.
        with self.stream:
            descriptor = self.stream.fileno()
            for chunk in iter(lambda: os.read(descriptor, 65536), b""):
                self.buffer += chunk
                del self.buffer[:-TAIL_BYTES]

    def join(self) -> None:
        """Wait briefly for the output the exited process left in the pipe; a background
        child still holding the pipe open must not hold up the program's outcome."""
        self.thread.join(timeout=0.5)

    def text(self) -> str:
        text = self.buffer.decode(errors="replace").strip()
        return f": ...{text[-800:]}" if text else ""


def retried(
    attempt: Callable[[], Outcome],
    retries: int,
    interval: timedelta,
    gone: Callable[[], str | None] | None = None,
) -> Outcome:
    """Run `attempt` until it passes, at most `retries` more times `interval` apart. A final
    failure (a program that cannot start, a URL whose host does not resolve) ends the wait
    at once, and so does `gone` saying why nothing can change any more."""
    outcome = Outcome(False, "not run")
    for number in range(retries + 1):
        if number:
            time.sleep(interval.total_seconds())
        outcome = attempt()
        if outcome.ok or outcome.final:
            return outcome
        reason = gone() if gone is not None and number < retries else None
        if reason is not None:
            return Outcome(False, f"{outcome.detail} ({reason}; not retried)", final=True)
    return outcome


def http_get(url: str, status: int, contains: str | None, timeout: timedelta) -> Outcome:
    """GET `url`; pass on the expected status and body substring."""
    request = urllib.request.Request(url, headers={"User-Agent": "reconciler"})
    try:
        with urllib.request.urlopen(request, timeout=timeout.total_seconds()) as response:
            got, body = response.status, response.read(1_000_000)
    except urllib.error.HTTPError as error:
        got, body = error.code, error.read(1_000_000)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        unresolvable = isinstance(reason, socket.gaierror)
        return Outcome(False, f"GET {url}: {reason}", final=unresolvable)
    if got != status:
        return Outcome(False, f"GET {url}: status {got}, expected {status}")
    if contains is not None and contains not in body.decode(errors="replace"):
        return Outcome(False, f"GET {url}: body lacks {contains!r}")
    return Outcome(True, f"GET {url}: {got}")
