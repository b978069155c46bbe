"""Field types shared by every kind: durations, resource names, ref globs."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, StrictStr

NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
KIND_PATTERN = re.compile(r"^[A-Z][A-Za-z0-9]*\Z")
_DURATION = re.compile(r"^(?P<n>\d+)(?P<unit>[smhd]?)\Z")
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Characters git forbids in ref names (git-check-ref-format), which a glob can never match.
_BAD_REF_CHARS = re.compile(r"[\s~^:\\\x00-\x1f\x7f]")
_BAD_REF_SEQUENCE = re.compile(r"\.\.|^/|/\Z|//|@\{|\.lock\Z|\.\Z")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class FieldError(ValueError):
    """A validation error about a field below the one being validated.

    A model validator that checks several fields together raises it with the path of the
    field at fault (e.g. `FieldError("...", "destinations", 1, "url")`), so the message
    names that field and its line instead of the whole model.
    """

    def __init__(self, message: str, *loc: str | int) -> None:
        super().__init__(message)
        self.loc: tuple[str | int, ...] = loc


def parse_duration(value: Any) -> timedelta:
    """Parse `30s`, `5m`, `6h`, `1d` or integer seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 5m, 6h, 1d")
    if isinstance(value, int) and value >= 0:
        return timedelta(seconds=value)
    match = _DURATION.match(str(value).strip()) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"invalid duration {value!r}: use integer seconds or 30s, 5m, 6h, 1d")
    return timedelta(seconds=int(match["n"]) * _SECONDS[match["unit"]])


def check_name(value: str) -> str:
    """Accept a resource name: lowercase letters, digits and '-', at most 63 characters."""
    if not NAME_PATTERN.match(value):
        raise ValueError(
            f"invalid name {value!r}: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters"
        )
    return value


def check_address(value: str) -> str:
    """Accept a resource address `Kind/name`."""
    kind, slash, name = value.partition("/")
    if not slash or not KIND_PATTERN.match(kind) or not NAME_PATTERN.match(name):
        raise ValueError(f"{value!r} is not an address like Mirror/core-repos")
    return value


def check_ref_glob(value: str) -> str:
    """Accept a branch or tag glob that could match a valid git ref name."""
    problem = None
    if not value:
        problem = "empty pattern"
    elif _BAD_REF_CHARS.search(value):
        problem = "contains a character git forbids in ref names"
    elif value.startswith("refs/"):
        problem = "a branch or tag name, not a full ref: write 'main', not 'refs/heads/main'"
    elif _BAD_REF_SEQUENCE.search(value):
        problem = "not a valid ref name pattern"
    elif value.count("[") != value.count("]"):
        problem = "unbalanced '[' ']'"
    if problem:
        raise ValueError(f"invalid glob {value!r}: {problem}")
    return value


def check_command(run: list[str]) -> list[str]:
    """Accept an argument list whose program (first argument) is not blank."""
    if not run[0].strip():
        raise ValueError("the program (first argument) is empty")
    return run


def check_positive(value: timedelta) -> timedelta:
    """Accept a timeout of at least one second (0 would kill the work at once)."""
    if value.total_seconds() < 1:
        raise ValueError("a timeout must be at least 1s")
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Timeout = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(check_positive)]
Command = Annotated[
    list[str],
    Field(min_length=1, description="Argument list, run without a shell."),
    AfterValidator(check_command),
]
ResourceName = Annotated[str, AfterValidator(check_name)]
Address = Annotated[str, AfterValidator(check_address)]
RefGlob = Annotated[str, AfterValidator(check_ref_glob)]


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Names of the variables a spec passes to a program: `[A-Za-z_][A-Za-z0-9_]*`, none of
    reconciler's own RECONCILER_* (set for every hook and check)."""
    for name in env:
        if not _VARIABLE.match(name):
            message = f"invalid variable name {name!r}: letters, digits and _, not first a digit"
            raise FieldError(message, name)
        if name.startswith("RECONCILER_"):
            raise FieldError(f"the variable {name} is set by reconciler; choose another name", name)
    return env


def public_env(env: dict[str, str]) -> dict[str, str]:
    """`env:` as stored and shown: each value as a digest (it may be a credential the user
    chose to pass), which still changes when the value does."""
    return {
        name: "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:16]
        for name, value in env.items()
    }


# Optional in every model (`env: Env | None = None`): unset, it is left out of the digest.
Env = Annotated[
    dict[str, StrictStr],
    Field(
        description="Variables for the program beyond its minimal environment (values may be "
        "${VAR}; stored and shown only as digests).",
    ),
    AfterValidator(check_env),
    PlainSerializer(public_env, when_used="json"),
]


def _web_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if "@" in parts.netloc:
        # urllib would ask the resolver for "user:password@host": the password leaves here.
        raise ValueError("must not carry user:password@; send a credential in a header")
    return url


# An http(s) URL that reconciler requests itself (checks, webhooks): never with userinfo.
WebUrl = Annotated[str, AfterValidator(_web_url)]
