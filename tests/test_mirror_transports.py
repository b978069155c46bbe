"""End-to-end: Mirror over every transport, through the real CLI, on real repositories.

Each test writes one Mirror spec, runs `python -m reconciler` in a subprocess and looks at what a
user would see: exit codes, output, the refs of the destination repositories, the state store.
Transports: plain paths, file:// URLs, `git daemon` (git://) and `git http-backend` behind HTTP
Basic auth (http://), on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests import gitservers
from tests.conftest import CliResult, Workspace, ok
from tests.gitservers import (
    GitDaemon,
    GitHttpServer,
    WorkRepo,
    free_port,
    git,
    make_bare,
    refs_of,
    seed_bare,
)

SECRET = "s3cret-token"  # the http_server fixture's password for user `bot`
WRONG = "wr0ng-Passw0rd-7f3a"


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _remote_yaml(remote: str | Mapping[str, str]) -> str:
    """One remote as a YAML flow mapping (values JSON-quoted, which YAML reads as strings)."""
    fields = {"url": remote} if isinstance(remote, str) else dict(remote)
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in fields.items()) + "}"


def write_mirror(
    ws: Workspace,
    name: str,
    source: str | Mapping[str, str],
    destinations: Sequence[str | Mapping[str, str]],
    repos: Sequence[str] | None = None,
) -> Path:
    """Write `specs/NAME.yaml` holding one Mirror."""
    lines = [
        "apiVersion: reconciler/v1",
        "kind: Mirror",
        f"metadata: {{name: {name}}}",
        "spec:",
        f"  source: {_remote_yaml(source)}",
        "  destinations:",
        *(f"    - {_remote_yaml(d)}" for d in destinations),
    ]
    if repos is not None:
        lines.append(f"  repos: {json.dumps(list(repos))}")
    return ws.write_spec(f"{name}.yaml", "\n".join(lines) + "\n")


def serial(ws: Workspace) -> int:
    """The state store's serial, read straight from the SQLite file."""
    connection = sqlite3.connect(f"file:{ws.state}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'serial'").fetchone()
    finally:
        connection.close()
    return int(row[0])


def head_of(bare: Path) -> str:
    """The branch a bare repository's HEAD names."""
    return git("symbolic-ref", "HEAD", cwd=bare).stdout.strip()


def plan_json(
    ws: Workspace, *args: str, env: Mapping[str, str] | None = None, code: int = 0
) -> dict[str, Any]:
    """`plan --json ARGS`, parsed (`code` is the expected exit code)."""
    result = ok(ws.run("plan", "--json", *args, env=env), code)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def steps_of(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for change in plan["changes"] for step in change["steps"]]


def push_commit(bare: Path, work_dir: Path, message: str, branch: str = "main") -> str:
    """Add one commit on `branch` of `bare` (through a working clone); return its sha."""
    work = WorkRepo.create(work_dir, bare_remote=bare)
    work.git("checkout", "-q", "-B", branch, f"refs/remotes/origin/{branch}")
    sha = work.commit(message, {"new.txt": message + "\n"})
    work.push(bare, f"{branch}:refs/heads/{branch}")
    return sha


def assert_in_sync(ws: Workspace) -> None:
    """A fresh plan finds nothing to do (`--detailed-exitcode` exits 0)."""
    result = ws.run("plan", "--detailed-exitcode")
    ok(result, 0)
    assert "No changes" in result.stdout, result.output


# --------------------------------------------------------------------------------------------
# 1. Plain paths
# --------------------------------------------------------------------------------------------


def test_plain_path_creates_bare_destination_and_is_idempotent(ws: Workspace) -> None:
    source = ws.root / "src" / "core.git"
    # HEAD of the source is `trunk`, not git's default, so the created mirror must copy it.
    seed_bare(source, branches=("trunk", "release/1.x"), tags=("v1.0",))
    work = WorkRepo.create(ws.root / "work", bare_remote=source)
    work.git("checkout", "-q", "-B", "trunk", "refs/remotes/origin/trunk")
    work.tag("v1.1", message="annotated release")  # a tag object, not just a commit pointer
    work.push(source, "refs/tags/v1.1:refs/tags/v1.1")
    expected = refs_of(source)
    assert len(expected) == 4
    # Relative to the spec file's directory, not to the working directory.
    write_mirror(ws, "core", str(source), ["../backups/core.git"])
    destination = ws.root / "backups" / "core.git"
    assert not destination.exists()

    first = ok(ws.run("apply", "--yes"))
    assert git("rev-parse", "--is-bare-repository", cwd=destination).stdout.strip() == "true"
    assert refs_of(destination) == expected
    assert head_of(destination) == "refs/heads/trunk"
    assert str(destination.resolve()) in first.stdout

    assert_in_sync(ws)
    before = serial(ws)
    second = ok(ws.run("apply", "--yes"))
    assert re.search(r"nothing to apply", second.output, re.IGNORECASE), second.output
    assert serial(ws) == before
    assert f"serial {before}," in ok(ws.run("state", "list")).stdout
    assert refs_of(destination) == expected


# --------------------------------------------------------------------------------------------
# 2. file:// URLs
# --------------------------------------------------------------------------------------------


def test_file_urls_for_source_and_destination(ws: Workspace) -> None:
    source = ws.root / "src" / "lib.git"
    expected = seed_bare(source, branches=("main", "dev"), tags=("v1", "v2"))
    # A directory name with a space, percent-encoded in the URL as file:// requires.
    destination = ws.root / "mirror copies" / "lib.git"
    dest_url = "file://" + urllib.parse.quote(str(destination))
    assert "%20" in dest_url
    write_mirror(ws, "lib", source.as_uri(), [dest_url])

    ok(ws.run("apply", "--yes"))
    assert refs_of(destination) == expected
    assert head_of(destination) == "refs/heads/main"
    assert not (ws.root / "mirror%20copies").exists()
    assert_in_sync(ws)


# --------------------------------------------------------------------------------------------
# 3. git daemon
# --------------------------------------------------------------------------------------------


def test_git_daemon_as_source_and_as_destination(ws: Workspace, daemon: GitDaemon) -> None:
    expected = seed_bare(daemon.root / "app.git", branches=("main", "feature/x"), tags=("v3",))
    make_bare(daemon.root / "backup" / "app.git")
    write_mirror(ws, "app", daemon.url("app.git"), [daemon.url("backup/app.git")])

    plan = plan_json(ws)
    ops = sorted((s["op"], s.get("ref")) for s in steps_of(plan))
    assert ops == [("create", ref) for ref in sorted(expected)]
    assert {s["unit"] for s in steps_of(plan)} == {daemon.url("backup/app.git")}

    ok(ws.run("apply", "--yes"))
    assert refs_of(daemon.root / "backup" / "app.git") == expected
    assert refs_of(daemon.url("backup/app.git")) == expected
    assert_in_sync(ws)


# --------------------------------------------------------------------------------------------
# 4. http-backend with a password from the environment
# --------------------------------------------------------------------------------------------


def _secret_forms(secret: str) -> list[bytes]:
    """The secret as bytes, percent-quoted, and inside an HTTP Basic header."""
    return [
        secret.encode(),
        urllib.parse.quote(secret, safe="").encode(),
        base64.b64encode(f"bot:{secret}".encode()),
    ]


def assert_no_secret_in_tree(root: Path, secret: str) -> None:
    """No file under `root` holds the secret in any of its forms."""
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert files, f"nothing under {root}"
    for path in files:
        data = path.read_bytes()
        for form in _secret_forms(secret):
            assert form not in data, f"{form!r} found in {path}"


def _http_spec(ws: Workspace, source: Path, url: str, extra: Sequence[str] = ()) -> None:
    destinations: list[str | Mapping[str, str]] = [
        {"url": url, "username": "bot", "password": "${BACKUP_TOKEN}"},
        *extra,
    ]
    write_mirror(ws, "vision", str(source), destinations)


def test_http_destination_password_from_env_never_leaks(
    ws: Workspace, http_server: GitHttpServer
) -> None:
    source = ws.root / "src" / "vision.git"
    expected = seed_bare(source, branches=("main", "release/2"), tags=("v2.0",))
    make_bare(http_server.root / "vision.git")
    url = http_server.url("vision.git")
    _http_spec(ws, source, url)
    env = {"BACKUP_TOKEN": SECRET}
    # The default, relative `--state state/reconciler.db`: git pushes from inside the cache repo,
    # so this also proves the askpass helper is found from there.
    outputs: list[CliResult] = []

    def run(*args: str, code: int = 0) -> CliResult:
        result = ok(ws.run(*args, env=env), code)
        outputs.append(result)
        return result

    run("validate")
    assert "${BACKUP_TOKEN}" in (ws.specs / "vision.yaml").read_text()
    plan = json.loads(run("plan", "--json").stdout)
    assert {s["unit"] for s in steps_of(plan)} == {url}
    plan_file = ws.root / "plans" / "vision.json"
    assert url in run("plan", "--out", str(plan_file)).stdout  # the text plan, and a saved one
    applied = run("apply", "--yes")
    assert url in applied.stdout

    assert refs_of(http_server.url("vision.git", username="bot", password=SECRET)) == expected
    assert refs_of(http_server.root / "vision.git") == expected
    # Every request after the first 401 challenge carried the right user.
    assert {r.user for r in http_server.records if r.status != 401} == {"bot"}

    status = json.loads(run("status", "--json").stdout)  # observes again, over http
    assert [(s["address"], s["sync"], s["health"]) for s in status] == [
        ("Mirror/vision", "Synced", "Healthy")
    ]
    run("history", "--json")
    shown = json.loads(run("state", "show", "Mirror/vision").stdout)
    assert shown["spec"]["spec"]["destinations"][0]["username"] == "bot"

    for result in outputs:
        for form in _secret_forms(SECRET):
            assert form.decode() not in result.output, result.output
    assert plan_file.read_bytes()
    assert_no_secret_in_tree(plan_file.parent, SECRET)
    assert_no_secret_in_tree(ws.root / "state", SECRET)
    configs = list((ws.root / "state").rglob("config"))
    assert configs, "no cache repository under state/"
    for config in configs:
        text = config.read_text()
        assert SECRET not in text
        assert "bot:" not in text and "@127.0.0.1" not in text  # no URL with credentials


# --------------------------------------------------------------------------------------------
# 5. http with a wrong password
# --------------------------------------------------------------------------------------------


def test_http_wrong_password_fails_fast_without_leaking_and_spares_other_destinations(
    ws: Workspace, http_server: GitHttpServer
) -> None:
    source = ws.root / "src" / "vision.git"
    expected = seed_bare(source, branches=("main", "dev"), tags=("v1",))
    make_bare(http_server.root / "vision.git")
    url = http_server.url("vision.git")
    local = ws.root / "local" / "vision.git"
    _http_spec(ws, source, url, extra=[str(local)])
    env = {"BACKUP_TOKEN": WRONG}

    started = time.monotonic()
    result = ws.run("apply", "--yes", env=env, timeout=60, stdin="")
    elapsed = time.monotonic() - started
    ok(result, 1)
    assert elapsed < 30, f"apply took {elapsed:.1f}s: did it wait for a prompt or retry forever?"
    assert url in result.output
    assert re.search(r"401|unauthori[sz]ed|credential|authentication", result.output, re.I), (
        result.output
    )
    assert WRONG not in result.output

    # The local destination was synced all the same; the http one is untouched.
    assert refs_of(local) == expected
    assert refs_of(http_server.root / "vision.git") == {}
    # The server rejected every request: nothing got in with the wrong password.
    assert http_server.records and all(r.status == 401 for r in http_server.records)

    status = ok(ws.run("status", "--json", env=env))
    assert WRONG not in status.output
    [row] = json.loads(status.stdout)
    assert row["sync"] == "OutOfSync" and row["health"] == "Degraded"
    assert url in row["message"]
    assert_no_secret_in_tree(ws.root / "state", WRONG)


class _PushNeedsAuthHandler(gitservers._Handler):
    """Anyone may read (fetch, ls-remote); only a push needs the password, as on a public forge."""

    def _authorized(self) -> tuple[bool, str | None]:
        if "git-receive-pack" not in self.path:
            return True, None
        return super()._authorized()


class PublicReadHttpServer(GitHttpServer):
    """A GitHttpServer whose reads are anonymous and whose pushes need bot's password.

    Swaps the handler class of tests.gitservers' private server after it starts (no request can
    have arrived yet): the fixture module offers no anonymous-read mode of its own.
    """

    def start(self) -> None:
        super().start()
        assert self._server is not None
        self._server.RequestHandlerClass = _PushNeedsAuthHandler


@pytest.fixture
def public_http(tmp_path: Path) -> Iterator[GitHttpServer]:
    root = tmp_path / "public-http"
    root.mkdir()
    with PublicReadHttpServer(root, username="bot", password=SECRET) as server:
        yield server


def _rejected_push(
    ws: Workspace, server: GitHttpServer
) -> tuple[str, Path, dict[str, str], CliResult, float]:
    """Mirror to `server` with the wrong password (first destination) and to a local path
    (second), one action at a time. Returns (http url, local path, source refs, result, seconds)."""
    source = ws.root / "src" / "vision.git"
    expected = seed_bare(source, branches=("main", "dev"), tags=("v1",))
    make_bare(server.root / "vision.git")
    url = server.url("vision.git")
    local = ws.root / "local" / "vision.git"
    _http_spec(ws, source, url, extra=[str(local)])
    env = {"BACKUP_TOKEN": WRONG}
    started = time.monotonic()
    result = ws.run("apply", "--yes", "--parallelism", "1", env=env, timeout=60, stdin="")
    elapsed = time.monotonic() - started
    ok(result, 1)
    assert WRONG not in result.output
    return url, local, expected, result, elapsed


def test_http_wrong_password_rejected_at_push_spares_other_destinations(
    ws: Workspace, public_http: GitHttpServer
) -> None:
    # Listing works anonymously, so the wrong password only shows when git pushes.
    url, local, expected, result, elapsed = _rejected_push(ws, public_http)
    assert elapsed < 30, f"apply took {elapsed:.1f}s: did it wait for a prompt or retry forever?"
    failure = [line for line in result.output.splitlines() if url in line and "fail" in line]
    assert failure, result.output
    assert re.search(r"authentication|401|credential", failure[0], re.I), failure[0]
    assert refs_of(local) == expected
    assert refs_of(public_http.root / "vision.git") == {}
    pushes = [r for r in public_http.records if "git-receive-pack" in r.path]
    assert pushes and all(r.status == 401 for r in pushes)
    assert_no_secret_in_tree(ws.root / "state", WRONG)

    # With the right password the next apply finishes the job, and only that destination.
    plan = plan_json(ws, env={"BACKUP_TOKEN": WRONG})
    assert {s["unit"] for s in steps_of(plan)} == {url}
    ok(ws.run("apply", "--yes", env={"BACKUP_TOKEN": SECRET}))
    assert refs_of(public_http.root / "vision.git") == expected


def test_status_after_a_failed_destination_names_the_failure(
    ws: Workspace, public_http: GitHttpServer
) -> None:
    url, *_ = _rejected_push(ws, public_http)
    status = ok(ws.run("status", "--json", env={"BACKUP_TOKEN": WRONG}))
    [row] = json.loads(status.stdout)
    assert row["health"] == "Degraded"
    assert "failed" in row["message"]
    assert url in row["message"] or "uthentication" in row["message"], row["message"]


def test_history_names_the_destination_that_failed(
    ws: Workspace, public_http: GitHttpServer
) -> None:
    url, local, *_ = _rejected_push(ws, public_http)
    history = ok(ws.run("history", "Mirror/vision", "--json"))
    entries = json.loads(history.stdout)
    assert {(e.get("unit"), e.get("outcome")) for e in entries} == {
        (str(local), "done"),
        (url, "failed"),
    }


def test_http_password_with_non_ascii_characters(ws: Workspace, tmp_path: Path) -> None:
    password = "pässwörd-ünïcode"
    root = tmp_path / "utf8-http"
    root.mkdir()
    source = ws.root / "src" / "vision.git"
    expected = seed_bare(source, branches=("main",), tags=("v1",))
    make_bare(root / "vision.git")
    with GitHttpServer(root, username="bot", password=password) as server:
        url = server.url("vision.git")
        # git itself authenticates with this password (UTF-8, as curl sends it).
        assert refs_of(server.url("vision.git", username="bot", password=password)) == {}
        _http_spec(ws, source, url)
        result = ws.run("apply", "--yes", env={"BACKUP_TOKEN": password}, timeout=60)
        assert password not in result.output
        ok(result)
        assert refs_of(root / "vision.git") == expected


# --------------------------------------------------------------------------------------------
# 6. An unreachable git:// destination
# --------------------------------------------------------------------------------------------


def test_unreachable_git_destination_does_not_stop_a_good_one(ws: Workspace) -> None:
    source = ws.root / "src" / "tools.git"
    expected = seed_bare(source, branches=("main", "next"), tags=("v0.1",))
    dead = f"git://127.0.0.1:{free_port()}/tools.git"  # nobody listens there
    good = ws.root / "backups" / "tools.git"
    write_mirror(ws, "tools", str(source), [dead, str(good)])

    started = time.monotonic()
    result = ws.run("apply", "--yes", timeout=60)
    elapsed = time.monotonic() - started
    ok(result, 1)
    assert elapsed < 30, f"apply took {elapsed:.1f}s"
    assert refs_of(good) == expected
    assert dead in result.output
    assert re.search(r"refused|unreachable|cannot|failed", result.output, re.I), result.output

    # The next plan still reports the dead destination, and only that one.
    plan = plan_json(ws, "--detailed-exitcode", code=2)
    assert {s["unit"] for s in steps_of(plan)} == {dead}
    assert {s["op"] for s in steps_of(plan)} == {"blocked"}


# --------------------------------------------------------------------------------------------
# 7. Organisation form with discovery
# --------------------------------------------------------------------------------------------


def test_organisation_discovers_repos_and_syncs_only_new_ones(ws: Workspace) -> None:
    org = ws.root / "org"
    sources = {
        "alpha": seed_bare(org / "alpha.git", branches=("main",), commits=1),
        "beta": seed_bare(org / "beta.git", branches=("main", "dev"), commits=2, tags=("v1",)),
        "gamma": seed_bare(org / "gamma.git", branches=("main", "x"), commits=3),
    }
    (org / "broken.git").mkdir()  # a directory that is no repository
    (org / "broken.git" / "notes.txt").write_text("not a repo\n")
    (org / "stray.git").write_text("a plain file\n")  # a file that looks like a repo name
    (org / "docs").mkdir()
    backups = [ws.root / "backup-1", ws.root / "backup-2"]
    templates = [f"{backups[0]}/{{repo}}.git", f"{backups[1].as_uri()}/{{repo}}.git"]
    write_mirror(ws, "org", f"{org}/{{repo}}.git", templates, repos=["*"])

    ok(ws.run("apply", "--yes"))
    for backup in backups:
        assert sorted(p.name for p in backup.iterdir()) == ["alpha.git", "beta.git", "gamma.git"]
        for name, refs in sources.items():
            assert refs_of(backup / f"{name}.git") == refs, (backup, name)

    # A fourth repository appears in the org: only its two destinations are planned and made.
    sources["delta"] = seed_bare(org / "delta.git", branches=("main", "hotfix"), tags=("v9",))
    untouched = {
        b: {n: refs_of(b / f"{n}.git") for n in ("alpha", "beta", "gamma")} for b in backups
    }
    plan = plan_json(ws)
    steps = steps_of(plan)
    new_units = {str(backups[0] / "delta.git"), f"{backups[1].as_uri()}/delta.git"}
    assert {s["repo"] for s in steps} == {"delta"}
    assert {s["unit"] for s in steps} == new_units
    per_unit = {
        unit: sorted((s["op"], s.get("ref")) for s in steps if s["unit"] == unit)
        for unit in new_units
    }
    wanted = sorted(
        [("init", None), *(("create", ref) for ref in sources["delta"])],
        key=lambda pair: (pair[0], pair[1] or ""),
    )
    for unit, ops in per_unit.items():
        assert sorted(ops, key=lambda pair: (pair[0], pair[1] or "")) == wanted, unit
    for step in steps:
        if step["op"] == "create":
            assert step["to"] == sources["delta"][step["ref"]]

    ok(ws.run("apply", "--yes"))
    for backup in backups:
        assert refs_of(backup / "delta.git") == sources["delta"]
        assert {n: refs_of(backup / f"{n}.git") for n in ("alpha", "beta", "gamma")} == (
            untouched[backup]
        )
        assert not (backup / "broken.git").exists() and not (backup / "stray.git").exists()
    assert_in_sync(ws)


# --------------------------------------------------------------------------------------------
# 8. Incremental sync
# --------------------------------------------------------------------------------------------


def test_new_commit_is_one_fast_forward_per_destination(ws: Workspace, daemon: GitDaemon) -> None:
    source = ws.root / "src" / "svc.git"
    seed_bare(source, branches=("main", "dev"), tags=("v1",))
    local = ws.root / "backups" / "svc.git"
    make_bare(daemon.root / "svc.git")
    remote = daemon.url("svc.git")
    write_mirror(ws, "svc", str(source), [str(local), remote])
    ok(ws.run("apply", "--yes"))
    old = refs_of(source)
    assert refs_of(local) == old and refs_of(daemon.root / "svc.git") == old

    new = push_commit(source, ws.root / "work", "a new feature")
    assert new != old["refs/heads/main"]
    plan = plan_json(ws, "--detailed-exitcode", code=2)
    [change] = plan["changes"]
    assert change["action"] == "update"
    steps = sorted(steps_of(plan), key=lambda s: s["unit"])
    assert [(s["unit"], s["op"], s["ref"], s["from"], s["to"]) for s in steps] == sorted(
        (unit, "fast-forward", "refs/heads/main", old["refs/heads/main"], new)
        for unit in (str(local), remote)
    )

    ok(ws.run("apply", "--yes"))
    expected = {**old, "refs/heads/main": new}
    assert refs_of(source) == expected
    assert refs_of(local) == expected
    assert refs_of(daemon.root / "svc.git") == expected
    assert_in_sync(ws)
