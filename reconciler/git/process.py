"""Running the git CLI: argument lists, no prompts, credentials via GIT_ASKPASS, scrubbed errors."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

from reconciler.errors import GitError, ReconcilerError, TemporaryError
from reconciler.git.remotes import Remote, network_timeout
from reconciler.redaction import Redactor


def _stall_limit(args: Sequence[str]) -> list[str]:
    """git over http gives up on a transfer slower than 1 byte/s for the network timeout
    (git:// has no such setting: the run's own timeout ends it).

    A push waits ten times longer: once the pack is sent, a server says
    nothing while it indexes the pack, checks connectivity and runs its hooks (a 110 MB pack
    took longer than the timeout), and cutting it off there fails a push that lands."""
    seconds = max(1.0, network_timeout())
    if args and args[0] == "push":
        seconds *= 10
    return ["-c", "http.lowSpeedLimit=1", "-c", f"http.lowSpeedTime={round(seconds)}"]


# git's words for failures that a later attempt may not meet again.
_TRANSIENT = (
    "could not read from remote repository",
    "connection refused",
    "connection reset",
    "connection timed out",
    "could not resolve host",
    "failed to connect",
    "unable to access",
    "early eof",
    "the remote end hung up",
    "503",
    "502",
    "unable to create",  # another git holds a lock file in the repository
    ".lock': file exists",
)

_ASKPASS = """#!/bin/sh
# Answers git's credential prompts from the environment of this one git process.
case "$1" in
  Username*) printf '%s\\n' "$RECONCILER_GIT_USERNAME" ;;
  *) printf '%s\\n' "$RECONCILER_GIT_PASSWORD" ;;
esac
"""


class GitRunner:
    """Runs git with a clean, prompt-free environment; one per state directory."""

    def __init__(self, work_dir: Path, redact: Redactor) -> None:
        self.work_dir = work_dir
        self.redact = redact
        self._askpass = work_dir / "askpass.sh"

    def _ensure_askpass(self) -> Path:
        if not self._askpass.exists():
            self.work_dir.mkdir(parents=True, exist_ok=True)
            temporary = self._askpass.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(_ASKPASS)
            temporary.chmod(stat.S_IRWXU)
            temporary.replace(self._askpass)
        return self._askpass

    def environment(self, remote: Remote | None = None) -> dict[str, str]:
        """The environment for a git process that may talk to `remote`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "RECONCILER_GIT_"))}
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
        if remote is not None and remote.password is not None:
            self.redact.add(remote.password)
            env.update(
                GIT_ASKPASS=str(self._ensure_askpass()),
                RECONCILER_GIT_USERNAME=remote.username or "git",
                RECONCILER_GIT_PASSWORD=remote.password,
            )
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path | None = None,
        remote: Remote | None = None,
        timeout: float = 3600,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `git ARGS`; on failure raise TemporaryError or GitError with scrubbed output."""
        # A credential helper configured by the user must not answer for us (or store our secret).
        command = ["git", "-c", "credential.helper=", "-c", "core.askPass="]
        command += [*_stall_limit(args), *args]
        try:
            result = subprocess.run(
                command,
                cwd=cwd,
                env=self.environment(remote),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise TemporaryError(f"git {args[0]} timed out after {timeout:g}s") from None
        if check and result.returncode != 0:
            raise self.error(args[0], result.stderr)
        return result

    def output(self, args: Sequence[str], *, cwd: Path) -> bytes:
        """Run a local git command and return its raw stdout (for archives)."""
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=self.environment(),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise self.error(args[0], result.stderr.decode(errors="replace"))
        return result.stdout

    def error(self, verb: str, stderr: str) -> ReconcilerError:
        """A scrubbed error from git's stderr, temporary when git's words say so."""
        lines = [line for line in self.redact(stderr).strip().splitlines() if line.strip()]
        message = f"git {verb}: " + ("; ".join(lines[-3:]) if lines else "failed")
        if any(word in stderr.lower() for word in _TRANSIENT):
            return TemporaryError(message)
        return GitError(message)
