"""Real git servers and repo builders for tests.

Everything here drives the git CLI (never a shell string) with an environment that ignores the
user's and the system's git config, so tests behave the same on every machine.

- ``GitDaemon``: ``git daemon`` serving ``git://127.0.0.1:PORT/<name>``, anonymous push enabled.
- ``GitHttpServer``: ``git http-backend`` behind a threaded stdlib HTTP server
  (``http://127.0.0.1:PORT/<name>``), optionally behind HTTP Basic auth.
- ``make_bare`` / ``WorkRepo`` / ``seed_bare`` / ``refs_of``: build and inspect real repositories.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import http.server
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

__all__ = [
    "GitDaemon",
    "GitError",
    "GitHttpServer",
    "RequestRecord",
    "WorkRepo",
    "free_port",
    "git",
    "git_env",
    "make_bare",
    "refs_of",
    "seed_bare",
]

HOST = "127.0.0.1"
# 2023-11-14T22:13:20Z: commit dates start here and tick one minute per commit, so shas are
# reproducible and `git log` order follows creation order.
BASE_EPOCH = 1_700_000_000
AUTHOR_NAME = "Test Author"
AUTHOR_EMAIL = "author@example.invalid"
COMMITTER_NAME = "Test Committer"
COMMITTER_EMAIL = "committer@example.invalid"

# Variables that would make git read a different repo, config or credential source than the
# one a test asks for.
_SCRUBBED_PREFIXES = ("GIT_",)
_SCRUBBED_NAMES = frozenset({"SSH_ASKPASS", "EMAIL"})


class GitError(subprocess.CalledProcessError):
    """A git command failed; unlike CalledProcessError its message includes stderr."""

    def __str__(self) -> str:
        stderr = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\n{stderr.strip()}"


# --------------------------------------------------------------------------------------------
# Environment and running git
# --------------------------------------------------------------------------------------------


def git_env(extra: Mapping[str, str] | None = None, *, when: int = 0) -> dict[str, str]:
    """Return an environment for git that ignores user/system config and never prompts.

    ``when`` is added (in seconds) to the fixed base date used for author and committer.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SCRUBBED_PREFIXES) and k not in _SCRUBBED_NAMES
    }
    date = f"{BASE_EPOCH + when} +0000"
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            # Never block on a password prompt: a wrong credential must fail, not hang.
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": AUTHOR_NAME,
            "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_NAME": COMMITTER_NAME,
            "GIT_COMMITTER_EMAIL": COMMITTER_EMAIL,
            "GIT_COMMITTER_DATE": date,
            "LC_ALL": "C",
        }
    )
    if extra:
        env.update(extra)
    return env


def git(
    *args: str | os.PathLike[str],
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``git -c init.defaultBranch=main ARGS`` and return the completed process (text).

    ``env`` is merged on top of :func:`git_env`. With ``check`` a non-zero exit raises
    :class:`GitError`, whose message carries git's stderr.
    """
    argv = ["git", "-c", "init.defaultBranch=main", *(os.fspath(a) for a in args)]
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=git_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise GitError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


@functools.cache
def _exec_path() -> Path:
    """Directory holding git's helper programs (git-http-backend lives there)."""
    return Path(git("--exec-path").stdout.strip())


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------
# Repositories
# --------------------------------------------------------------------------------------------


def make_bare(path: str | os.PathLike[str]) -> Path:
    """Create an empty bare repository at ``path`` (default branch ``main``) and return it."""
    p = Path(path)
    git("init", "--bare", "-q", p)
    return p


def refs_of(path_or_url: str | os.PathLike[str]) -> dict[str, str]:
    """Return ``{ref: sha}`` from ``git ls-remote``, without HEAD and peeled ``^{}`` entries."""
    out = git("ls-remote", os.fspath(path_or_url)).stdout
    refs: dict[str, str] = {}
    for line in out.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref or ref == "HEAD" or ref.endswith("^{}"):
            continue
        refs[ref] = sha
    return refs


class WorkRepo:
    """A non-bare working repository driven through the git CLI.

    Each commit/tag advances a private clock by one minute, so histories are reproducible.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._clock = 0

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], bare_remote: str | os.PathLike[str] | None = None
    ) -> WorkRepo:
        """Init a work repo at ``path`` on branch ``main``.

        With ``bare_remote`` it becomes remote ``origin``; if that remote already has a
        ``main`` branch, the work tree is checked out at it.
        """
        p = Path(path)
        git("init", "-q", p)
        repo = cls(p)
        if bare_remote is not None:
            repo.git("remote", "add", "origin", os.fspath(bare_remote))
            repo.git("fetch", "-q", "origin")
            if repo.git(
                "rev-parse", "-q", "--verify", "refs/remotes/origin/main", check=False
            ).stdout:
                repo.git("reset", "-q", "--hard", "refs/remotes/origin/main")
        return repo

    def git(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a git command inside this repo at the repo's current clock time."""
        merged = dict(git_env(when=self._clock * 60))
        # Keep the clock's dates but let callers add/override other variables.
        merged.update(env or {})
        return git(*args, cwd=self.path, env=merged, check=check)

    def _tick(self) -> None:
        self._clock += 1

    def commit(self, message: str, files: Mapping[str, str | bytes] | None = None) -> str:
        """Write ``files`` (relative path -> content), stage everything and commit; return sha.

        Commits even when nothing changed (``--allow-empty``) so callers can always move a ref.
        """
        for rel, content in (files or {}).items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        self._tick()
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "--no-verify", "-m", message)
        return self.rev("HEAD")

    def branch(self, name: str, start: str = "HEAD", *, checkout: bool = True) -> str:
        """Create (or reset) branch ``name`` at ``start``; check it out unless told not to."""
        if checkout:
            self.git("checkout", "-q", "-B", name, start)
        else:
            self.git("branch", "-f", name, start)
        return self.rev(f"refs/heads/{name}")

    def checkout(self, ref: str) -> None:
        """Check out ``ref`` (a branch name, tag or sha)."""
        self.git("checkout", "-q", ref)

    def tag(
        self, name: str, annotated: bool = False, message: str | None = None, target: str = "HEAD"
    ) -> str:
        """Tag ``target``; annotated if asked or a message is given. Return the tag ref's sha."""
        self._tick()
        if annotated or message is not None:
            self.git("tag", "-f", "-a", "-m", message or name, name, target)
        else:
            self.git("tag", "-f", name, target)
        return self.rev(f"refs/tags/{name}")

    def push(
        self,
        remote_url: str | os.PathLike[str],
        *refspecs: str,
        force: bool = False,
        check: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Push ``refspecs`` (default: every branch and tag) to ``remote_url``."""
        specs = list(refspecs) or ["refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*"]
        args = ["push", "--porcelain"]
        if force:
            args.append("--force")
        return self.git(*args, os.fspath(remote_url), *specs, check=check, env=env)

    def rev(self, ref: str) -> str:
        """Return the sha ``ref`` resolves to (a tag object's own sha for annotated tags)."""
        return self.git("rev-parse", "--verify", "-q", ref).stdout.strip()


def seed_bare(
    path: str | os.PathLike[str],
    branches: Iterable[str] = ("main",),
    commits: int = 3,
    tags: Iterable[str] = (),
) -> dict[str, str]:
    """Build a bare repo at ``path`` and return its ``{refs/heads/*|refs/tags/*: sha}``.

    ``main`` gets ``commits`` commits; every other branch gets ``commits`` more of its own on
    top of main. Tags are lightweight, on main's tip.
    """
    bare = make_bare(path)
    branch_list = list(branches)
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        work = WorkRepo.create(Path(tmp) / "work")
        for i in range(commits):
            work.commit(f"main commit {i + 1}", {"main.txt": f"main {i + 1}\n"})
        for name in branch_list:
            if name == "main":
                continue
            work.branch(name, "main")
            # File name derived from the branch keeps contents distinct across branches.
            fname = name.replace("/", "_") + ".txt"
            for i in range(commits):
                work.commit(f"{name} commit {i + 1}", {fname: f"{name} {i + 1}\n"})
        for name in tags:
            work.tag(name, target="main")
        specs = [f"refs/heads/{b}:refs/heads/{b}" for b in branch_list]
        specs += [f"refs/tags/{t}:refs/tags/{t}" for t in tags]
        if specs:
            work.push(bare, *specs)
    if branch_list and "main" not in branch_list:
        # HEAD would dangle at main; point it at a branch that exists.
        git("symbolic-ref", "HEAD", f"refs/heads/{branch_list[0]}", cwd=bare)
    return refs_of(bare)


# --------------------------------------------------------------------------------------------
# git daemon
# --------------------------------------------------------------------------------------------


class GitDaemon:
    """``git daemon`` exporting every repo under ``root`` with anonymous push, on 127.0.0.1."""

    def __init__(self, root: str | os.PathLike[str], port: int | None = None) -> None:
        self.root = Path(root)
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def url(self, name: str) -> str:
        """URL of repository ``name`` (a path relative to ``root``)."""
        return f"git://{HOST}:{self.port}/{name.lstrip('/')}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, wait: float = 10.0) -> None:
        """Start the daemon and block until its port accepts connections."""
        # A file, not a pipe: nobody reads stderr while the daemon runs, a pipe could fill up.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        argv = [
            "git",
            "daemon",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={self.root}",
            f"--listen={HOST}",
            f"--port={self.port}",
            "--reuseaddr",
            "--informative-errors",
            str(self.root),
        ]
        self._proc = subprocess.Popen(
            argv,
            env=git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            # Own process group, so stop() also reaches the per-connection children it forks.
            start_new_session=True,
        )
        deadline = time.monotonic() + wait
        while True:
            if self._proc.poll() is not None:
                err = self._read_stderr()
                self.stop()
                raise RuntimeError(f"git daemon exited early on port {self.port}:\n{err}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.2):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                err = self._read_stderr()
                self.stop()
                raise RuntimeError(
                    f"git daemon not listening on port {self.port} after {wait}s:\n{err}"
                )
            time.sleep(0.02)

    def _read_stderr(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate the daemon (and its children); kill it if it lingers."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            else:
                # Reap children that may outlive an early-exiting parent.
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGTERM)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


# --------------------------------------------------------------------------------------------
# git http-backend behind a threaded HTTP server
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request as seen by :class:`GitHttpServer` (for assertions in tests)."""

    method: str
    path: str
    status: int
    chunked: bool
    gzip: bool
    git_protocol: str | None
    user: str | None


# Headers the CGI may emit that describe framing; the server sets its own.
_HOP_BY_HOP = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})


# What socketserver hands to process_request (a datagram pair for UDP servers).
_Request = socket.socket | tuple[bytes, socket.socket]


class _Server(http.server.ThreadingHTTPServer):
    """Carries the configuration and bookkeeping the handler needs."""

    daemon_threads = False  # joined on close (block_on_close), see GitHttpServer.stop
    block_on_close = True

    def __init__(
        self,
        root: Path,
        username: str | None,
        password: str | None,
        port: int = 0,
    ) -> None:
        super().__init__((HOST, port), _Handler)
        self.root = root
        self.username = username
        self.password = password
        self.lock = threading.Lock()
        self.records: list[RequestRecord] = []
        self.errors: list[str] = []
        self.open_sockets: set[socket.socket] = set()

    def process_request(self, request: _Request, client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self.lock:
                self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        if isinstance(request, socket.socket):
            with self.lock:
                self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: _Request, client_address: Any) -> None:
        # Keep stderr quiet; tests can inspect .errors instead.
        with self.lock:
            self.errors.append(traceback.format_exc())


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, like a real git server
    timeout = 30  # idle keep-alive connections give up eventually
    server_version = "gitservers/1"

    def setup(self) -> None:
        # Without TCP_NODELAY, Nagle + delayed ACK stall every kept-alive response by ~40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default per-request stderr logging."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # ---- request body ------------------------------------------------------------------------

    def _read_body(self) -> tuple[bytes, bool]:
        """Return the raw (possibly still gzip-encoded) body and whether it was chunked."""
        te = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in te:
            return self._read_chunked(), True
        length = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(length) if length > 0 else b""), False

    def _read_chunked(self) -> bytes:
        # The CGI needs CONTENT_LENGTH or EOF; de-chunk here so it sees a plain body.
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("EOF inside chunked body")
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                # Skip optional trailers up to the blank line.
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(parts)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ConnectionError("short chunk")
            parts.append(chunk)
            self.rfile.readline(3)  # CRLF after each chunk

    # ---- auth --------------------------------------------------------------------------------

    def _authorized(self) -> tuple[bool, str | None]:
        srv = self.server
        if srv.username is None:
            return True, None
        header = self.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, pw = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False, None
        ok = hmac.compare_digest(user.encode(), srv.username.encode()) and hmac.compare_digest(
            pw.encode(), (srv.password or "").encode()
        )
        return ok, user if ok else None

    # ---- response ----------------------------------------------------------------------------

    def _send(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        """Write status line, headers and body with a single write."""
        lines = [f"{self.protocol_version} {status} {reason}"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)
        self.wfile.flush()

    def _record(self, status: int, chunked: bool, user: str | None) -> None:
        rec = RequestRecord(
            method=self.command,
            path=self.path,
            status=status,
            chunked=chunked,
            gzip=self.headers.get("Content-Encoding", "").lower() in ("gzip", "x-gzip"),
            git_protocol=self.headers.get("Git-Protocol"),
            user=user,
        )
        with self.server.lock:
            self.server.records.append(rec)

    def _serve(self) -> None:
        # Always consume the body first so a rejected request leaves the connection reusable.
        body, chunked = self._read_body()
        ok, user = self._authorized()
        if not ok:
            self._record(401, chunked, None)
            self._send(
                401,
                "Unauthorized",
                [("WWW-Authenticate", 'Basic realm="git"'), ("Content-Type", "text/plain")],
                b"authentication required\n",
            )
            return
        status, reason, headers, out = self._run_cgi(body, user)
        self._record(status, chunked, user)
        self._send(status, reason, headers, out)

    def _run_cgi(
        self, body: bytes, user: str | None
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        split = urllib.parse.urlsplit(self.path)
        env = git_env()
        env.update(
            {
                "GATEWAY_INTERFACE": "CGI/1.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "SERVER_NAME": HOST,
                "SERVER_PORT": str(self.server.server_address[1]),
                "REQUEST_METHOD": self.command,
                "PATH_INFO": urllib.parse.unquote(split.path),
                "QUERY_STRING": split.query,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                # http-backend only allows receive-pack (push) for an authenticated user.
                "REMOTE_USER": user or "anonymous",
                "GIT_PROJECT_ROOT": str(self.server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
            }
        )
        # http-backend inflates gzip bodies itself when told the encoding.
        if enc := self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = enc
        if proto := self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = proto
        proc = subprocess.run(
            [str(_exec_path() / "git-http-backend")],
            input=body,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if proc.stderr:
            with self.server.lock:
                self.server.errors.append(proc.stderr.decode(errors="replace"))
        return _parse_cgi(proc.stdout, proc.returncode)


def _parse_cgi(raw: bytes, returncode: int) -> tuple[int, str, list[tuple[str, str]], bytes]:
    """Split CGI output into (status, reason, headers, body)."""
    crlf, lf = raw.find(b"\r\n\r\n"), raw.find(b"\n\n")
    if crlf == -1 and lf == -1:
        msg = f"git http-backend produced no headers (exit {returncode})\n".encode()
        return 500, "Internal Server Error", [("Content-Type", "text/plain")], msg
    if crlf != -1 and (lf == -1 or crlf < lf):
        head, body = raw[:crlf], raw[crlf + 4 :]
    else:
        head, body = raw[:lf], raw[lf + 2 :]
    status, reason = 200, "OK"
    headers: list[tuple[str, str]] = []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not name:
            continue
        if name.lower() == "status":
            code, _, text = value.partition(" ")
            status = int(code)
            reason = text or HTTPStatus(status).phrase
        elif name.lower() not in _HOP_BY_HOP:
            headers.append((name, value))
    return status, reason, headers, body


class GitHttpServer:
    """Smart-HTTP git server for every repo under ``root`` on 127.0.0.1 (random port).

    With ``username``/``password`` every request needs matching HTTP Basic auth, else 401.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        username: str | None = None,
        password: str | None = None,
        port: int = 0,
    ) -> None:
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.root = Path(root)
        self._port = port  # 0: any free port; a restart after stop() keeps the one it got
        self.username = username
        self.password = password
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The listening port (only valid while running)."""
        if self._server is None:
            raise RuntimeError("server not running")
        port: int = self._server.server_address[1]
        return port

    def url(self, name: str, *, username: str | None = None, password: str | None = None) -> str:
        """URL of repository ``name``; credentials, if given, are embedded (percent-quoted)."""
        auth = ""
        if username is not None:
            auth = urllib.parse.quote(username, safe="")
            if password is not None:
                auth += ":" + urllib.parse.quote(password, safe="")
            auth += "@"
        return f"http://{auth}{HOST}:{self.port}/{name.lstrip('/')}"

    @property
    def records(self) -> list[RequestRecord]:
        """A snapshot of every request served so far."""
        if self._server is None:
            return []
        with self._server.lock:
            return list(self._server.records)

    @property
    def requests(self) -> int:
        """Number of HTTP requests served so far."""
        return len(self.records)

    @property
    def errors(self) -> list[str]:
        """Handler tracebacks and git http-backend stderr output, for debugging failures."""
        if self._server is None:
            return []
        with self._server.lock:
            return list(self._server.errors)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind a port and serve in a background thread."""
        _exec_path()  # resolve once up front rather than inside the first request
        self._server = _Server(self.root, self.username, self.password, self._port)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"GitHttpServer:{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, wake idle keep-alive handlers, join every thread, close sockets."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return  # never started, or already stopped
        server.shutdown()
        with server.lock:
            lingering = list(server.open_sockets)
        for sock in lingering:
            # Handlers blocked reading the next keep-alive request see EOF and finish.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        server.server_close()  # joins handler threads (block_on_close)
        if thread is not None:
            thread.join(timeout=5)
        # Keep records/errors readable after exit; only drop the thread.
        self._thread = None
