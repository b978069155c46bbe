"""Running the git CLI: argument lists, no prompts, credentials via GIT_ASKPASS, scrubbed errors."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reconciler.errors import GitError, ReconcilerError, TemporaryError
from reconciler.git.remotes import Remote, network_timeout
from reconciler.redaction import Redactor, minimal_environment


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

# The helper answers only for the one origin (scheme://host:port) of its git process's
# remote: a server that redirects git elsewhere is refused, not handed the password.
# git asks "Username for 'ORIGIN[/path]': " and "Password for 'SCHEME://USER@HOST[/path]': ".
# The password is in a file of the private directory, never in git's environment.
_ASKPASS = """#!/bin/sh
case "$1" in
  "Username for '$RECONCILER_GIT_ORIGIN'"* | "Username for '$RECONCILER_GIT_ORIGIN/"*)
    printf '%s\\n' "$RECONCILER_GIT_USERNAME" ;;
  "Password for '$RECONCILER_GIT_USER_ORIGIN'"* | "Password for '$RECONCILER_GIT_USER_ORIGIN/"*)
    cat -- "$RECONCILER_GIT_PASSWORD_FILE" ;;
  *)
    printf '%s\\n' "reconciler: refused to answer \\"$1\\": \\
the password is only for $RECONCILER_GIT_ORIGIN" >&2
    exit 1 ;;
esac
"""
_REFUSED = "reconciler: refused to answer"
# What a git child gets beyond the minimal environment: its configuration, the user's ssh
# agent, proxies and CA certificates.
_GIT_ALSO = (
    *("XDG_CONFIG_HOME", "SSH_AUTH_SOCK", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE"),
    *("http_proxy", "https_proxy", "no_proxy", "all_proxy"),
    *("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY"),
)
# What git says when a server redirects and redirects are not followed.
_REDIRECTED = re.compile(r"returned error: (30[1-8])")


class GitRunner:
    """Runs git with a clean, prompt-free environment; one per state directory.

    `work_dir` (the state's cache directory) holds no helper: a file there could have been
    written by someone else. The askpass helper and the passwords it answers with are
    written into a directory of this process (mkdtemp: mode 0700, this user's), checked
    before each use and removed at exit.
    """

    def __init__(self, work_dir: Path, redact: Redactor) -> None:
        self.work_dir = work_dir
        self.redact = redact
        self._private: Path | None = None
        self._files: dict[str, Path] = {}  # "helper" or "password:..." -> its file
        self._guard = threading.Lock()

    def _private_file(self, content: str, *, helper: bool = False) -> Path:
        """A file holding `content` that only this user can read, in this process's
        private directory: the askpass helper, or one password."""
        key = "helper" if helper else f"password:{content}"
        with self._guard:
            if self._private is None or not self._private.exists():
                self._private = Path(tempfile.mkdtemp(prefix="reconciler-"))
                weakref.finalize(self, shutil.rmtree, self._private, ignore_errors=True)
                self._files.clear()
            _check_private(self._private, directory=True)
            path = self._files.get(key)
            if path is None or not os.path.lexists(path):
                prefix = "askpass-" if helper else "secret-"
                descriptor, name = tempfile.mkstemp(prefix=prefix, dir=self._private)
                os.fchmod(descriptor, stat.S_IRWXU if helper else stat.S_IRUSR | stat.S_IWUSR)
                with os.fdopen(descriptor, "w") as file:
                    file.write(content)
                path = self._files[key] = Path(name)
            _check_private(path, directory=False)
            return path

    def environment(self, remote: Remote | None = None) -> dict[str, str]:
        """The environment for a git process that may talk to `remote`: the minimal one and
        what git needs (`_GIT_ALSO`), less any value that holds a credential the run knows;
        git gets a credential only through the helper, and only for `remote`'s origin. No
        other variable reaches git, so a credential the run does not know yet (the specs'
        fetch) and the webhook secret stay out too."""
        if remote is not None and remote.password is not None:
            self.redact.add(remote.password)
        env = {
            k: v
            for k, v in minimal_environment(_GIT_ALSO).items()
            if not self.redact.holds_secret(v)
        }
        env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
        if remote is not None and remote.password is not None:
            scheme, host = remote.url.split("://", 1)[0], _host(remote.url)
            username = remote.username or "git"
            env.update(
                GIT_ASKPASS=str(self._private_file(_ASKPASS, helper=True)),
                RECONCILER_GIT_ORIGIN=f"{scheme}://{host}",
                RECONCILER_GIT_USER_ORIGIN=f"{scheme}://{username}@{host}",
                RECONCILER_GIT_USERNAME=username,
                RECONCILER_GIT_PASSWORD_FILE=str(self._private_file(remote.password + "\n")),
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
        command = ["git", "-c", "credential.helper=", "-c", "core.askPass=", *_stall_limit(args)]
        # ext:: runs a shell command, whatever a user's config allows.
        command += ["-c", "protocol.ext.allow=never"]
        if remote is not None and remote.password is not None:
            # A redirect would take the password, or the push, to another place.
            command += ["-c", "http.followRedirects=false"]
        command += args
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
        refused = [line for line in lines if line.startswith(_REFUSED)]
        redirected = _REDIRECTED.search(stderr)
        if refused:
            return GitError(f"git {verb}: {refused[0]}")
        if redirected:
            return GitError(
                f"git {verb}: the server redirected the request (HTTP {redirected[1]}); "
                "with a password reconciler follows no redirect, so that the password goes "
                "only to the URL written in the spec: write the URL it redirects to"
            )
        message = f"git {verb}: " + ("; ".join(lines[-3:]) if lines else "failed")
        if any(word in stderr.lower() for word in _TRANSIENT):
            return TemporaryError(message)
        return GitError(message)


def _host(url: str) -> str:
    """`host[:port]` of a URL as git shows it in a prompt (percent-decoded, no user)."""
    return unquote(urlsplit(url).netloc.rpartition("@")[2])


def _check_private(path: Path, *, directory: bool) -> None:
    """Refuse a helper path that is not this user's alone (or is a link)."""
    info = os.lstat(path)
    kind_ok = stat.S_ISDIR(info.st_mode) if directory else stat.S_ISREG(info.st_mode)
    if not kind_ok or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise GitError(
            f"{path}: not a private {'directory' if directory else 'file'} of this user "
            f"(mode {stat.filemode(info.st_mode)}, owner {info.st_uid}); refusing to use it "
            "for credentials"
        )
