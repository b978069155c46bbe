"""Listing a remote's refs with dulwich: no process start, one client per remote kind."""

from __future__ import annotations

import base64
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from reconciler.errors import GitError, TemporaryError
from reconciler.git.remotes import Remote, network_timeout
from reconciler.redaction import Redactor

MIRRORED_PREFIXES = ("refs/heads/", "refs/tags/")
# Asked of servers speaking protocol v2, so they list only what a mirror may touch (and HEAD).
_PREFIXES = [b"HEAD", b"refs/heads/", b"refs/tags/"]


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def is_sha(text: str) -> bool:
    """Whether `text` is a full object id: 40 (sha1) or 64 (sha256) lowercase hex digits."""
    return _SHA.fullmatch(text) is not None


def short(sha: str | None) -> str:
    """Seven characters of a sha, as git shows them ("-" for none)."""
    return sha[:7] if sha else "-"


@dataclass(frozen=True)
class RefListing:
    """Branches and tags of a remote ({full ref name: sha}) and the branch its HEAD names."""

    refs: dict[str, str]
    head: str | None


def list_refs(remote: Remote, redact: Redactor) -> RefListing:
    """List refs/heads/* and refs/tags/* of `remote` (peeled entries and other refs left out)."""
    if remote.is_local:
        direct = read_local_refs(remote.local_path)
        if direct is not None:
            return direct
    return _dulwich_refs(remote, redact)


def _dulwich_refs(remote: Remote, redact: Redactor) -> RefListing:
    """Ask the remote with dulwich (imported here: a local no-op plan never needs it)."""
    from dulwich.client import LocalGitClient, get_transport_and_path
    from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
    from dulwich.refs import Ref

    try:
        if remote.is_local:
            result = LocalGitClient().get_refs(
                str(remote.local_path).encode(), ref_prefix=_PREFIXES
            )
        elif remote.scheme in ("http", "https"):
            result = _http_client(remote).get_refs(
                urlsplit(remote.url).path.encode(), ref_prefix=_PREFIXES
            )
        else:
            if remote.scheme == "git":
                # dulwich's git:// client opens its socket without a timeout: a server that
                # accepts and never answers would hang the run. The default covers it.
                socket.setdefaulttimeout(network_timeout())
            client, path = get_transport_and_path(
                remote.url,
                username=remote.username,
                password=remote.password,
                operation="pull",
            )
            result = client.get_refs(path.encode(), ref_prefix=_PREFIXES)
    except NotGitRepository:
        raise GitError(f"{remote}: not a git repository") from None
    except Redirected as redirect:
        raise GitError(
            redact(
                f"{remote}: the server redirects to {redirect.location}; with a password "
                "reconciler follows no redirect, so that the password goes only to the URL "
                "written in the spec: write the URL it redirects to"
            )
        ) from None
    except (OSError, HangupException, GitProtocolError) as error:
        raise TemporaryError(redact(f"{remote}: cannot list refs: {_detail(error)}")) from None
    except Exception as error:  # dulwich raises many kinds (HTTP status, urllib3 errors)
        raise _classify(remote, error, redact) from None
    refs = {
        name.decode(): sha.decode()
        for name, sha in result.refs.items()
        if name.startswith(b"refs/") and not name.endswith(b"^{}") and sha is not None
    }
    head = (result.symrefs or {}).get(Ref(b"HEAD"))
    return RefListing(
        refs={n: s for n, s in refs.items() if n.startswith(MIRRORED_PREFIXES)},
        head=head.decode() if head else None,
    )


class Redirected(Exception):
    """An http server sent a listing with a password elsewhere (refused, not followed)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _http_client(remote: Remote) -> Any:
    """A dulwich http client with a read timeout and, given a password, our own header:
    dulwich encodes Basic credentials as latin-1, git as UTF-8 (and it ignores
    `extra_headers`). With a password no redirect is followed (as for git): the header
    is sent to the URL written in the spec only."""
    import urllib3  # only here: importing it costs 70 ms of every run
    from dulwich.client import Urllib3HttpGitClient

    if remote.password is None:
        pool = urllib3.PoolManager(timeout=network_timeout())
        return Urllib3HttpGitClient(remote.url, pool_manager=pool)
    token = base64.b64encode(f"{remote.username or ''}:{remote.password}".encode())

    class NoRedirects(urllib3.PoolManager):
        def urlopen(  # type: ignore[override]  # (as urllib3's own PoolManager.urlopen)
            self, method: str, url: str, redirect: bool = True, **kw: Any
        ) -> urllib3.BaseHTTPResponse:
            response = super().urlopen(method, url, redirect=False, **kw)
            location = response.get_redirect_location()
            if location:
                response.drain_conn()
                raise Redirected(urljoin(url, location).split("/info/refs", 1)[0])
            return response

    headers = {"Authorization": "Basic " + token.decode()}
    pool = NoRedirects(headers=headers, timeout=network_timeout())
    return Urllib3HttpGitClient(remote.url, pool_manager=pool)


def read_local_refs(path: Path) -> RefListing | None:
    """Branches and tags of a local repository read straight from its files (`packed-refs`,
    loose refs, HEAD): faster than opening it with dulwich. None when the layout is not the
    plain files backend (dulwich then answers). Plain `os` calls: pathlib costs double here."""
    root = os.fspath(path)
    dot_git = os.path.join(root, ".git")
    git_dir = dot_git if os.path.isfile(os.path.join(dot_git, "HEAD")) else root
    try:
        head_text = _read(os.path.join(git_dir, "HEAD"))
        config = _read(os.path.join(git_dir, "config"))
    except OSError:
        return None
    if "refstorage" in config.lower() or not os.path.isdir(os.path.join(git_dir, "refs")):
        return None
    refs: dict[str, str] = {}
    try:
        packed = _read(os.path.join(git_dir, "packed-refs"))
    except FileNotFoundError:
        packed = ""
    for line in packed.splitlines():
        sha, _, name = line.partition(" ")
        if name.startswith(MIRRORED_PREFIXES) and len(sha) == 40:
            refs[name] = sha
    for prefix in MIRRORED_PREFIXES:
        for directory, _, files in os.walk(os.path.join(git_dir, prefix)):
            relative = os.path.relpath(directory, git_dir).replace(os.sep, "/")
            for name in files:
                if name.endswith(".lock"):
                    continue
                content = _read(os.path.join(directory, name)).strip()
                if len(content) != 40:  # a symbolic ref or something odd: let dulwich decide
                    return None
                refs[f"{relative}/{name}"] = content
    head = head_text.strip().removeprefix("ref: ") if head_text.startswith("ref: ") else None
    return RefListing(refs=refs, head=head)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as file:
        return file.read()


def _classify(remote: Remote, error: Exception, redact: Redactor) -> GitError | TemporaryError:
    detail = _detail(error)
    if detail == str(error):
        detail = f"{type(error).__name__}: {error}"
    text = redact(f"{remote}: cannot list refs: {detail}")
    lowered = text.lower()
    if "401" in lowered or "403" in lowered or "404" in lowered or "authentication" in lowered:
        return GitError(text)
    return TemporaryError(text)


def _detail(error: Exception) -> str:
    """What went wrong, without urllib3's wrapping (dulwich re-raises its MaxRetryError):
    "Failed to establish a new connection: [Errno 111] Connection refused" instead of the
    pool, the URL again and "Max retries exceeded"."""
    if isinstance(error, TimeoutError) or "timed out" in str(error).lower():
        return f"no answer within {network_timeout():g} s (RECONCILER_NETWORK_TIMEOUT)"
    for candidate in (error, error.__cause__, error.__context__):
        reason = getattr(candidate, "reason", None)
        if isinstance(reason, Exception):
            return str(reason).split("): ", 1)[-1]
    return str(error)
