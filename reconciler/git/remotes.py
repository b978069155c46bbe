"""A git remote as reconciler sees it: a URL without credentials, plus credentials on the side."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

NETWORK_SCHEMES = ("git", "http", "https", "ssh", "git+ssh")
DEFAULT_NETWORK_TIMEOUT = 60.0


def network_timeout() -> float:
    """Seconds a network read may wait for a silent server (`$RECONCILER_NETWORK_TIMEOUT`,
    default 60): a stalled server then fails its resource instead of hanging the run."""
    try:
        seconds = float(os.environ.get("RECONCILER_NETWORK_TIMEOUT", DEFAULT_NETWORK_TIMEOUT))
    except ValueError:
        return DEFAULT_NETWORK_TIMEOUT
    return seconds if seconds > 0 else DEFAULT_NETWORK_TIMEOUT


_SCP_LIKE = re.compile(r"^(?:[^@/:]+@)?[^@/:]{2,}:")


@dataclass(frozen=True)
class Remote:
    """A repository location; `url` never holds credentials (they travel beside it)."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        """`file` for paths and file:// URLs, `ssh` for scp-like `host:path`, else the scheme."""
        parts = urlsplit(self.url)
        if parts.scheme == "file" or parts.scheme in NETWORK_SCHEMES:
            return parts.scheme
        return "ssh" if _SCP_LIKE.match(self.url) else "file"

    @property
    def is_local(self) -> bool:
        """True for plain paths and file:// URLs."""
        return self.scheme == "file"

    @property
    def local_path(self) -> Path:
        """The filesystem path of a local remote."""
        parts = urlsplit(self.url)
        return Path(unquote(parts.path)) if parts.scheme == "file" else Path(self.url)

    def exists(self) -> bool:
        """For a local remote: whether a whole repository is there (a `git init` killed
        half-way leaves HEAD without `objects/`: not one). Network remotes are assumed to."""
        if not self.is_local:
            return True
        path = self.local_path
        return is_repository(path) or is_repository(path / ".git")

    def git_url(self) -> str:
        """The URL to hand to git (absolute path for local remotes)."""
        return os.fspath(self.local_path) if self.is_local else self.url

    def __str__(self) -> str:
        return self.url


def is_repository(path: Path) -> bool:
    """True for a git directory git can use: HEAD and `objects/` (`git init` writes
    `objects/` last, so a half-made one lacks it and a new `git init` completes it)."""
    return (path / "HEAD").is_file() and (path / "objects").is_dir()
