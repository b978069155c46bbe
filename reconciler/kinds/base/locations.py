"""Repository locations in specs (mirror sources and destinations, taxonomy targets,
environment sources): the URL forms accepted, relative paths, and credentials kept out of
URLs (`Credentials`, the base of every spec model naming a repository). One set of rules
for every kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationInfo, model_validator

from reconciler.git import Remote
from reconciler.redaction import strip_userinfo
from reconciler.specs.types import FieldError

SUPPORTED = ("file", "git", "http", "https", "ssh", "git+ssh")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
# `https:/host/x`, `ssh:host/x`: a network scheme without `//` (git would read it as scp-like
# `host:path` with the host `https`); `file:/path` is a valid file URL and stays allowed.
_HALF_URL = re.compile(r"^(?P<scheme>https?|ssh|git|git\+ssh):(?!//)", re.IGNORECASE)
# `transport::address` runs the program git-remote-<transport> (`ext::` runs a shell command).
_HELPER = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_FILE_PREFIX = re.compile(r"^file:(?!//)", re.IGNORECASE)


def check_location(url: str, context: dict[str, Any] | None) -> str:
    """A path or URL as written in a spec (after `${VAR}` interpolation): scheme checked,
    nothing git could read as an option, relative paths (also `file:PATH`) made absolute
    against the spec file's directory (`base_dir` in the validation context)."""
    url = url.strip()
    if not url:
        raise ValueError("empty URL")
    if url == "~" or url.startswith("~/"):
        raise ValueError(
            "~ is not expanded: write an absolute path, or one relative to the spec file"
        )
    if _HELPER.match(url):
        raise ValueError("transport::address forms run a program; use a path or a URL")
    half = _HALF_URL.match(url)
    if half:
        raise ValueError(f"malformed URL: {half['scheme']}: needs // (like {half['scheme']}://)")
    if _option_like(url):
        raise ValueError(
            "a path, host or user starting with '-' could be read by git or ssh as an "
            "option; write it another way (./-name for a relative path)"
        )
    base = (context or {}).get("base_dir")
    if _FILE_PREFIX.match(url):  # `file:PATH` is a path like any other, never scp-like
        text = unquote(_FILE_PREFIX.sub("", url, count=1))
        if not text.strip():
            raise ValueError("the URL names no repository path")
        path = Path(text)
        return str(path if path.is_absolute() else (Path(base or ".") / path).resolve())
    remote = Remote(url)
    # Remote.scheme reads `ftp://host/x` as scp-like ssh; judge a `scheme://` as written.
    written = _SCHEME.match(url)
    scheme = written["scheme"] if written else remote.scheme
    if scheme.lower() not in SUPPORTED:
        raise ValueError(
            f"unsupported URL scheme {scheme!r}; use a path or one of "
            "file://, git://, http://, https://, ssh://"
        )
    if written and not urlsplit(url).path.strip("/"):
        raise ValueError("the URL names no repository path")
    if remote.is_local and not written and base is not None:
        return str((Path(base) / url).resolve()) if not Path(url).is_absolute() else url
    return url


def _location(url: str, info: ValidationInfo) -> str:
    return check_location(url, info.context)


# A spec field holding a repository path or URL, checked by `check_location`.
Location = Annotated[str, Field(min_length=1), AfterValidator(_location)]


def _option_like(url: str) -> bool:
    """True when git, or the ssh it starts, could read a part of `url` as an option: the
    text itself, or what follows a `file:` prefix, a `scheme://`, a user, a `host/` or an
    scp-like `host:`, starts with '-'."""
    parts = [url, _FILE_PREFIX.sub("", url, count=1)]
    written = _SCHEME.match(url)
    if written:
        rest = url[written.end() :]
        netloc, _, path = rest.partition("/")
        parts += [rest, netloc.rpartition("@")[2], path]
    elif Remote(url).scheme == "ssh":  # scp-like [user@]host:path
        address, _, path = url.partition(":")
        parts += [address.rpartition("@")[2], path]
    return any(part.startswith("-") or unquote(part).startswith("-") for part in parts)


Password = Annotated[SecretStr | None, Field(description="Use ${VAR}; never stored.")]


class Credentials(BaseModel):
    """A spec model naming a repository, with `username` and `password` for http(s).

    A subclass declares `username: str | None = None` and `password: Password = None` after
    its own fields (pydantic would put a base's fields first, and the JSON Schema shows
    them in that order), and names its URL field in `url_field`: after validation, a user
    part of that URL moves to `username` and a password in it is refused (`separate`).
    """

    if TYPE_CHECKING:
        username: str | None
        password: SecretStr | None

    url_field: ClassVar[str | None] = None  # None: the subclass calls `separate` itself

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        if self.url_field is not None:
            url = getattr(self, self.url_field)
            setattr(self, self.url_field, self.separate(url, self.url_field))
        return self

    def separate(self, url: str, url_field: str) -> str:
        """`url` without a user part, which becomes the username unless one is given;
        refuses a password inside the URL (it would be stored and printed) and a password
        for anything but http(s)."""
        bare, user, secret = strip_userinfo(url)
        # strip_userinfo leaves ssh:// alone (its user is part of the address), not its password.
        if secret is not None or (_SCHEME.match(url) and urlsplit(url).password):
            raise FieldError(
                "put credentials in username/password (password: ${VAR}), not in the URL",
                url_field,
            )
        if user is not None:
            url, self.username = bare, self.username or user
        if self.password is not None and Remote(url).scheme not in ("http", "https"):
            raise FieldError("a password is only used with http(s) URLs", "password")
        return url

    def remote_at(self, url: str) -> Remote:
        """`url` as a git Remote with these credentials."""
        password = self.password.get_secret_value() if self.password else None
        return Remote(url, self.username, password)
