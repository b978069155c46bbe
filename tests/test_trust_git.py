"""Issue 12, the git side of trust: nothing from a spec reaches git as an option, a password
goes only to the host it was written for, git children inherit no secret, no helper someone
else wrote is run, and every preserved old tip stays preserved.

Everything runs the real CLI against real repositories, real `git http-backend` servers and
small real HTTP relays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import json
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

from reconciler.git import GitRunner, Remote
from reconciler.redaction import Redactor
from tests.conftest import Workspace, ok
from tests.gitservers import HOST, GitHttpServer, WorkRepo, git, make_bare, refs_of, seed_bare

SECRET = "s3cret-token"  # the password of user `bot` on the servers below
WEBHOOK = "whsec-4c1d-never-in-git"


def mirror(ws: Workspace, source: str, destination: str, extra: str = "") -> Path:
    """specs/m.yaml: one Mirror; `destination` is a YAML flow mapping's body."""
    text = (
        "apiVersion: reconciler/v1\n"
        "kind: Mirror\n"
        "metadata: {name: m}\n"
        "spec:\n"
        f"  source: {{url: {json.dumps(source)}}}\n"
        "  destinations:\n"
        f"    - {{{destination}}}\n"
    )
    return ws.write_spec("m.yaml", text + extra)


def authorizations(records: list[tuple[str, str | None]]) -> list[str]:
    """The passwords found in recorded Authorization headers."""
    found = []
    for _path, header in records:
        if header and header.lower().startswith("basic "):
            found.append(base64.b64decode(header.split(" ", 1)[1]).decode(errors="replace"))
    return found


# --------------------------------------------------------------------------------------------
# 1. Nothing from a spec or a variable reaches git as an option
# --------------------------------------------------------------------------------------------


def test_a_file_url_from_a_variable_never_runs_git_init_with_an_option(
    ws: Workspace, tmp_path: Path
) -> None:
    """`${DEST}` = `file:--template=DIR` made `git init` take DIR as its template, in the
    working directory (the attack then planted a config running `ext::`)."""
    seed_bare(ws.root / "src.git", branches=("main",))
    template = tmp_path / "evil-template"
    template.mkdir()
    (template / "planted").write_text("copied by git init --template\n")
    spec = mirror(ws, "../src.git", 'url: "${DEST}"')
    env = {"DEST": f"file:--template={template}"}
    applied = ws.run("apply", "--yes", env=env)
    # Nothing planted: git init never ran here, with or without the template.
    assert not (ws.root / "planted").exists(), applied.output
    assert not (ws.root / "HEAD").exists() and not (ws.root / "config").exists()
    for result in (applied, ws.run("validate", env=env), ws.run("plan", env=env)):
        ok(result, 1)
        assert (
            "specs/m.yaml:7: Mirror/m: spec.destinations[0].url: a path, host or user starting "
            "with '-' could be read by git or ssh as an option"
        ) in result.stderr, result.output
        assert "nothing was applied" in result.stderr
    assert spec.is_file()


def test_file_prefix_paths_are_relative_to_the_spec_file(ws: Workspace) -> None:
    """`file:PATH` (no //) is a path like any other: resolved against the spec's directory,
    not against wherever reconciler runs."""
    expected = seed_bare(ws.root / "src.git", branches=("main", "dev"))
    mirror(ws, "file:../src.git", "url: file:../out/dest.git")
    ok(ws.run("apply", "--yes"))
    assert refs_of(ws.root / "out" / "dest.git") == expected
    assert not (ws.root.parent / "out").exists()
    result = ok(ws.run("plan", "--detailed-exitcode"))
    assert "No changes" in result.stdout


# --------------------------------------------------------------------------------------------
# 3. A password goes only to the host it was written for
# --------------------------------------------------------------------------------------------


class Relay:
    """An HTTP server on 127.0.0.1 that records every request's Authorization header and
    either redirects it (302, when `redirect(path)` is true) to `target` or relays it to
    the git server on `upstream`."""

    def __init__(
        self, upstream: int, target: str = "", redirect: Callable[[str], bool] = lambda p: False
    ) -> None:
        self.records: list[tuple[str, str | None]] = []
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                relay.serve(self)

            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self.server.server_address[1]
        self.upstream, self.target, self.redirect = upstream, target, redirect

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self.port}/{name}"

    def serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        self.records.append((handler.path, handler.headers.get("Authorization")))
        body = self._body(handler)
        if self.redirect(handler.path):
            self._answer(handler, 302, [("Location", self.target + handler.path)], b"")
            return
        connection = http.client.HTTPConnection(HOST, self.upstream, timeout=60)
        skip = {"host", "connection", "transfer-encoding", "content-length"}
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in skip}
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        keep = [(k, v) for k, v in response.getheaders() if k.lower() not in skip]
        connection.close()
        self._answer(handler, response.status, keep, data)

    @staticmethod
    def _body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while size := int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(handler.rfile.read(size))
                handler.rfile.readline()
            handler.rfile.readline()
            return b"".join(parts)
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))

    @staticmethod
    def _answer(
        handler: http.server.BaseHTTPRequestHandler,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        handler.send_response(status)
        for key, value in headers:
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> Self:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def redirecting_destination(
    tmp_path: Path, redirect: Callable[[str], bool], elsewhere_asks: bool
) -> Iterator[tuple[Relay, Relay, GitHttpServer]]:
    """The spec's host (a relay in front of a real server needing bot's password) that
    redirects some requests to another port: a relay recording what it is sent, in front of
    a second real server that asks for a password too (`elsewhere_asks`) or not."""
    (tmp_path / "good").mkdir()
    (tmp_path / "evil").mkdir()
    make_bare(tmp_path / "good" / "vision.git")
    make_bare(tmp_path / "evil" / "vision.git")
    git("config", "http.receivepack", "true", cwd=tmp_path / "evil" / "vision.git")
    evil_auth = {"username": "bot", "password": "any"} if elsewhere_asks else {}
    with (
        GitHttpServer(tmp_path / "good", username="bot", password=SECRET) as good,
        GitHttpServer(tmp_path / "evil", **evil_auth) as evil,
        Relay(evil.port) as elsewhere,
        Relay(good.port, f"http://{HOST}:{elsewhere.port}", redirect) as spec_host,
    ):
        yield spec_host, elsewhere, good


def test_a_push_redirected_to_another_port_never_carries_the_password(
    ws: Workspace, tmp_path: Path
) -> None:
    """The listing is served, the push (receive-pack) is redirected to a server that asks
    for a password: it never gets it, and the user is told why the push failed."""
    expected = seed_bare(ws.root / "src.git", branches=("main",))
    with redirecting_destination(
        tmp_path, lambda path: "receive-pack" in path, elsewhere_asks=True
    ) as (spec_host, elsewhere, good):
        url = spec_host.url("vision.git")
        mirror(ws, "../src.git", f'url: "{url}", username: bot, password: "${{BACKUP_TOKEN}}"')
        result = ok(ws.run("apply", "--yes", env={"BACKUP_TOKEN": SECRET}), 1)
        assert SECRET in authorizations(spec_host.records)[0]  # the listing had it
        assert not any(SECRET in a for a in authorizations(elsewhere.records))
        assert elsewhere.records == []  # git followed no redirect
        assert "redirected the request (HTTP 302)" in result.output, result.output
        assert "write the URL it redirects to" in result.output
        assert SECRET not in result.output
        assert refs_of(good.root / "vision.git") == {}
        assert expected


def test_a_listing_redirected_to_another_port_never_carries_the_password(
    ws: Workspace, tmp_path: Path
) -> None:
    """dulwich's listing: the spec's host redirects every request to another port whose
    server answers without asking; the password is not sent there (nor anything else)."""
    seed_bare(ws.root / "src.git", branches=("main",))
    with redirecting_destination(tmp_path, lambda path: True, elsewhere_asks=False) as (
        spec_host,
        elsewhere,
        _good,
    ):
        url = spec_host.url("vision.git")
        mirror(ws, "../src.git", f'url: "{url}", username: bot, password: "${{BACKUP_TOKEN}}"')
        result = ws.run("plan", "--detailed-exitcode", env={"BACKUP_TOKEN": SECRET})
        assert not any(SECRET in a for a in authorizations(elsewhere.records))
        assert elsewhere.records == []
        ok(result, 2)
        assert "1 blocked" in result.output
        moved = f"http://{HOST}:{elsewhere.port}/vision.git"
        assert f"the server redirects to {moved};" in result.output
        assert "write the URL it redirects to" in result.output
        assert SECRET not in result.output


def test_the_askpass_helper_answers_only_for_the_spec_urls_origin(tmp_path: Path) -> None:
    """Even when git is told to follow a redirect, the helper refuses to answer for the host
    it was sent to, and the error says so."""
    with redirecting_destination(tmp_path, lambda path: True, elsewhere_asks=True) as (
        spec_host,
        elsewhere,
        _good,
    ):
        runner = GitRunner(tmp_path / "cache", Redactor())
        remote = Remote(spec_host.url("vision.git"), "bot", SECRET)
        follow = ["-c", "http.followRedirects=true", "ls-remote", "--", remote.git_url()]
        result = runner.run(follow, remote=remote, check=False)
        assert result.returncode != 0
        assert elsewhere.records, "the redirect was not followed: the test proves nothing"
        assert not any(SECRET in a for a in authorizations(elsewhere.records))
        error = str(runner.error("ls-remote", result.stderr))
        assert f"refused to answer \"Username for 'http://{HOST}:{elsewhere.port}'" in error
        assert f"the password is only for http://{HOST}:{spec_host.port}" in error
        # and for its own origin it answers
        direct = Remote(f"http://{HOST}:{_good.port}/vision.git", "bot", SECRET)
        runner.run(["ls-remote", "--", direct.git_url()], remote=direct)


# --------------------------------------------------------------------------------------------
# 4. git children do not inherit secrets, and 5. no helper someone else wrote is trusted
# --------------------------------------------------------------------------------------------


def git_shim(tmp_path: Path) -> tuple[Path, Path]:
    """A `git` placed first on PATH that saves the environment it got, then runs git."""
    real = shutil.which("git")
    assert real is not None
    bin_dir, dumps = tmp_path / "shim-bin", tmp_path / "environments"
    bin_dir.mkdir()
    dumps.mkdir()
    shim = bin_dir / "git"
    shim.write_text(
        f'#!/bin/sh\ncat /proc/$$/environ > "{dumps}/$$-$(date +%s%N)"\nexec "{real}" "$@"\n'
    )
    shim.chmod(0o755)
    return bin_dir, dumps


def test_git_children_get_no_secret_and_no_planted_helper_runs(
    ws: Workspace, tmp_path: Path, http_server: GitHttpServer
) -> None:
    expected = seed_bare(ws.root / "src.git", branches=("main", "dev"), tags=("v1",))
    make_bare(http_server.root / "vision.git")
    url = http_server.url("vision.git")
    mirror(ws, "../src.git", f'url: "{url}", username: bot, password: "${{BACKUP_TOKEN}}"')
    # A helper planted where the old code looked for (and kept) its own.
    hostile = ws.root / "state" / "cache" / "askpass.sh"
    hostile.parent.mkdir(parents=True)
    stolen = tmp_path / "stolen"
    hostile.write_text(
        f'#!/bin/sh\nenv > "{stolen}"\n'
        f'case "$1" in Username*) echo bot ;; *) echo "$RECONCILER_GIT_PASSWORD" ;; esac\n'
    )
    hostile.chmod(0o777)
    bin_dir, dumps = git_shim(tmp_path)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "BACKUP_TOKEN": SECRET,
        "COPY_OF_THE_TOKEN": SECRET,
        "RECONCILER_WEBHOOK_SECRET": WEBHOOK,
        "SAME_AS_THE_WEBHOOK_SECRET": WEBHOOK,
    }
    ok(ws.run("apply", "--yes", env=env))
    assert refs_of(http_server.root / "vision.git") == expected
    assert not stolen.exists(), "the planted askpass.sh ran"
    seen = sorted(dumps.iterdir())
    assert len(seen) >= 3, "the shim saw no git: the test proves nothing"
    for dump in seen:
        environ = dump.read_bytes()
        assert SECRET.encode() not in environ, environ.replace(b"\0", b"\n").decode()
        assert WEBHOOK.encode() not in environ
        assert b"BACKUP_TOKEN=" not in environ and b"COPY_OF_THE_TOKEN=" not in environ
    helpers = {
        line.split(b"=", 1)[1]
        for dump in seen
        for line in dump.read_bytes().split(b"\0")
        if line.startswith(b"GIT_ASKPASS=")
    }
    assert helpers, "no git was given the helper"
    for helper in helpers:
        assert Path(helper.decode()).parent != hostile.parent
        assert not Path(helper.decode()).exists()  # removed when reconciler ended
    ok(ws.run("plan", "--detailed-exitcode", env=env))


def test_git_fetching_the_specs_gets_only_what_git_needs(ws: Workspace, tmp_path: Path) -> None:
    """The specs' own fetch runs before any credential of the specs is known: git children
    get only the variables git needs, so nothing else of reconciler's environment leaks."""
    seed_bare(ws.root / "source.git")
    infra = WorkRepo.create(ws.root / "infra")
    infra.commit(
        "specs",
        {
            "specs/core.yaml": (
                "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: core}\n"
                f"spec:\n  source: {{url: {ws.root / 'source.git'}}}\n"
                f"  destinations: [{{url: {ws.root / 'dest1.git'}}}]\n"
            )
        },
    )
    bin_dir, dumps = git_shim(tmp_path)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "BACKUP_TOKEN": SECRET,  # a credential of specs not read yet
        "SOME_SERVICE_KEY": "not-for-git",
    }
    specs = f"file://{ws.root / 'infra'}#main:specs"
    ok(ws.run("--specs", specs, "apply", "--yes", env=env))
    seen = sorted(dumps.iterdir())
    assert len(seen) >= 2, "the shim saw no git: the test proves nothing"
    for dump in seen:
        environ = dump.read_bytes()
        assert SECRET.encode() not in environ, environ.replace(b"\0", b"\n").decode()
        assert b"SOME_SERVICE_KEY=" not in environ
        assert b"PATH=" in environ  # what git needs is still there


def test_a_helper_directory_someone_else_can_write_is_refused(tmp_path: Path) -> None:
    """The private directory is checked before each use: opened to others, it is refused."""
    source = seed_bare(tmp_path / "src.git", branches=("main",))
    runner = GitRunner(tmp_path / "cache", Redactor())
    make_bare(tmp_path / "http" / "vision.git")
    with GitHttpServer(tmp_path / "http", username="bot", password=SECRET) as server:
        remote = Remote(server.url("vision.git"), "bot", SECRET)
        assert runner.run(["ls-remote", "--", remote.git_url()], remote=remote).returncode == 0
        helper = Path(runner.environment(remote)["GIT_ASKPASS"])
        assert stat.S_IMODE(helper.parent.stat().st_mode) == 0o700
        helper.parent.chmod(0o777)
        try:
            with pytest.raises(Exception, match="not a private directory of this user"):
                runner.run(["ls-remote", "--", remote.git_url()], remote=remote)
        finally:
            helper.parent.chmod(0o700)
    assert source


# --------------------------------------------------------------------------------------------
# 6. Every preserved old tip stays preserved
# --------------------------------------------------------------------------------------------

# The CLI runs with a clock that runs 1000 times slower, from a whole second on: the applies
# below then fall within one second, as two quick force-updates do on a fast machine.
SLOW_CLOCK = """
import os, time
_real, _base = time.time, float(os.environ["SLOW_CLOCK_BASE"])
time.time = lambda: _base + (_real() - _base) / 1000
"""


def test_two_force_updates_of_one_ref_within_a_second_keep_both_old_tips(
    ws: Workspace, tmp_path: Path
) -> None:
    seed_bare(ws.root / "src.git", branches=("main",))
    mirror(ws, "../src.git", "url: ../dest.git", "  conflictStrategy: force\n")
    clock = tmp_path / "clock"
    clock.mkdir()
    (clock / "sitecustomize.py").write_text(SLOW_CLOCK)
    path = os.pathsep.join(filter(None, [str(clock), os.environ.get("PYTHONPATH")]))
    env = {"PYTHONPATH": path, "SLOW_CLOCK_BASE": str(int(time.time()))}
    ok(ws.run("apply", "--yes", env=env))
    tips = []
    for attempt in range(2):
        downstream = WorkRepo.create(tmp_path / f"downstream-{attempt}", ws.root / "dest.git")
        downstream.git("checkout", "-q", "-B", "main", "origin/main")
        tips.append(downstream.commit(f"downstream {attempt}", {"local.txt": f"{attempt}\n"}))
        downstream.push(ws.root / "dest.git", "main:main", force=True)
        ok(ws.run("apply", "--yes", env=env))
    history = json.loads(ok(ws.run("history", "Mirror/m", "--json")).stdout)
    kept = [entry for item in history for entry in item.get("preserved", [])]
    assert sorted(k["sha"] for k in kept) == sorted(tips), kept
    names = {k["kept_as"] for k in kept}
    assert len(names) == 2, f"both old tips recorded under one name: {names}"
    seconds = {name.split("/")[4] for name in names}
    assert len(seconds) == 1, f"the applies were not within one second: {names}"
    for entry in kept:  # each name still holds the tip history says it holds
        held = git("rev-parse", entry["kept_as"], cwd=entry["cache"]).stdout.strip()
        assert held == entry["sha"]
    ok(ws.run("plan", "--detailed-exitcode", env=env))
