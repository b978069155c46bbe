"""Self-tests for tests/gitservers.py: real pushes and clones against both servers."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from tests.gitservers import (
    GitDaemon,
    GitError,
    GitHttpServer,
    WorkRepo,
    free_port,
    git,
    make_bare,
    refs_of,
    seed_bare,
)

USER, PASSWORD = "bot", "s3cret"


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_seed_bare_refs_and_reproducible_shas(tmp_path: Path) -> None:
    refs = seed_bare(tmp_path / "a.git", branches=("main", "dev"), commits=2, tags=("v1",))
    assert set(refs) == {"refs/heads/main", "refs/heads/dev", "refs/tags/v1"}
    assert refs["refs/tags/v1"] == refs["refs/heads/main"]
    assert refs["refs/heads/dev"] != refs["refs/heads/main"]
    # dev is main plus two commits of its own.
    count = git("rev-list", "--count", "main..dev", cwd=tmp_path / "a.git").stdout.strip()
    assert count == "2"
    # Fixed identities and dates: a second build yields the same shas.
    again = seed_bare(tmp_path / "b.git", branches=("main", "dev"), commits=2, tags=("v1",))
    assert again == refs


def test_workrepo_annotated_tag_and_force_push(tmp_path: Path) -> None:
    bare = make_bare(tmp_path / "r.git")
    work = WorkRepo.create(tmp_path / "w", bare_remote=bare)
    first = work.commit("one", {"a/b.txt": "hello\n"})
    tag_sha = work.tag("v1", message="release 1")
    assert tag_sha != first  # annotated: the tag object has its own sha
    assert work.rev("v1^{commit}") == first
    work.push(bare)
    assert refs_of(bare) == {"refs/heads/main": first, "refs/tags/v1": tag_sha}

    # Rewrite history: a plain push is rejected, a forced one goes through.
    work.git("commit", "-q", "--amend", "-m", "one, amended")
    new = work.rev("HEAD")
    assert work.push(bare, "main", check=False).returncode != 0
    work.push(bare, "main", force=True)
    assert refs_of(bare)["refs/heads/main"] == new

    # A second work repo on the same remote starts at the remote's main.
    other = WorkRepo.create(tmp_path / "w2", bare_remote=bare)
    assert other.rev("HEAD") == new
    assert (other.path / "a" / "b.txt").read_text() == "hello\n"


def test_daemon_push_and_clone(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    make_bare(root / "repo.git")
    with GitDaemon(root) as daemon:
        url = daemon.url("repo.git")
        assert url == f"git://127.0.0.1:{daemon.port}/repo.git"
        work = WorkRepo.create(tmp_path / "work")
        sha = work.commit("first", {"f.txt": "daemon\n"})
        work.branch("feature")
        feature = work.commit("feature work", {"g.txt": "more\n"})
        work.tag("v1", target="main")
        work.push(url)
        assert refs_of(url) == {
            "refs/heads/main": sha,
            "refs/heads/feature": feature,
            "refs/tags/v1": sha,
        }
        git("clone", "-q", url, tmp_path / "clone")
        assert (tmp_path / "clone" / "f.txt").read_text() == "daemon\n"
        # A missing repo is an error, not a hang.
        assert git("ls-remote", daemon.url("nope.git"), check=False).returncode != 0
    # The port is released once the daemon is gone.
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", daemon.port)) != 0


def test_http_push_and_clone_with_auth(tmp_path: Path) -> None:
    seeded = seed_bare(tmp_path / "srv" / "repo.git", branches=("main", "dev"), tags=("v1",))
    with GitHttpServer(tmp_path / "srv", username=USER, password=PASSWORD) as http:
        good = http.url("repo.git", username=USER, password=PASSWORD)
        assert refs_of(good) == seeded

        git("clone", "-q", good, tmp_path / "clone")
        clone = WorkRepo(tmp_path / "clone")
        assert clone.rev("HEAD") == seeded["refs/heads/main"]
        sha = clone.commit("over http", {"http.txt": "pushed\n"})
        clone.push(good, "main")
        assert refs_of(good)["refs/heads/main"] == sha
        assert all(r.user == USER for r in http.records if r.status != 401)
        assert http.requests == len(http.records) > 0


def test_http_rejects_missing_or_wrong_password(tmp_path: Path) -> None:
    seed_bare(tmp_path / "srv" / "repo.git")
    with GitHttpServer(tmp_path / "srv", username=USER, password=PASSWORD) as http:
        for url in (http.url("repo.git", username=USER, password="wrong"), http.url("repo.git")):
            # GIT_TERMINAL_PROMPT=0 (explicit here, also the git_env default): fail, never prompt.
            proc = git(
                "clone", url, tmp_path / "nope", check=False, env={"GIT_TERMINAL_PROMPT": "0"}
            )
            assert proc.returncode != 0
            assert not (tmp_path / "nope").exists()
        assert http.records
        assert {r.status for r in http.records} == {401}


def test_http_anonymous_push_and_unknown_repo(tmp_path: Path) -> None:
    make_bare(tmp_path / "srv" / "repo.git")
    with GitHttpServer(tmp_path / "srv") as http:
        work = WorkRepo.create(tmp_path / "w")
        sha = work.commit("anon")
        work.push(http.url("repo.git"))
        assert refs_of(http.url("repo.git")) == {"refs/heads/main": sha}
        assert git("ls-remote", http.url("missing.git"), check=False).returncode != 0
        assert 404 in {r.status for r in http.records}


def test_http_large_push_uses_chunked_encoding(tmp_path: Path) -> None:
    make_bare(tmp_path / "srv" / "big.git")
    payload = os.urandom(2 * 1024 * 1024)  # incompressible: the pack exceeds http.postBuffer
    with GitHttpServer(tmp_path / "srv", username=USER, password=PASSWORD) as http:
        url = http.url("big.git", username=USER, password=PASSWORD)
        work = WorkRepo.create(tmp_path / "w")
        sha = work.commit("big blob", {"blob.bin": payload})
        work.push(url, "main")
        assert refs_of(url) == {"refs/heads/main": sha}
        assert any(r.chunked and r.method == "POST" for r in http.records), http.records

        git("clone", "-q", url, tmp_path / "clone")
        got = (tmp_path / "clone" / "blob.bin").read_bytes()
        assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_http_protocol_v2_and_gzip_request_bodies(tmp_path: Path) -> None:
    # Many branches make the fetch request large enough for git to gzip it.
    branches = ["main", *(f"topic/{i:02d}" for i in range(40))]
    seeded = seed_bare(tmp_path / "srv" / "many.git", branches=branches, commits=1)
    with GitHttpServer(tmp_path / "srv") as http:
        dest = tmp_path / "clone"
        git("-c", "protocol.version=2", "clone", "-q", "--mirror", http.url("many.git"), dest)
        assert refs_of(dest) == seeded
        assert any(r.git_protocol == "version=2" for r in http.records)
        assert any(r.gzip for r in http.records), http.records


@pytest.mark.parametrize("server", ["daemon", "http"])
def test_servers_stop_cleanly(tmp_path: Path, server: str) -> None:
    seed_bare(tmp_path / "r.git")
    srv: GitDaemon | GitHttpServer = (
        GitDaemon(tmp_path) if server == "daemon" else GitHttpServer(tmp_path)
    )
    with srv:
        url = srv.url("r.git")
        assert refs_of(url)
    with pytest.raises(GitError):
        git("ls-remote", url)
