"""Keeps credentials, and terminal control sequences, out of everything reconciler prints
or stores."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

# What a program needs to run as the user who runs reconciler, and nothing that could
# carry a credential: the documented minimal environment of hooks, checks and git.
MINIMAL_ENVIRONMENT = frozenset(
    ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR")
)


def in_minimal_environment(name: str) -> bool:
    """Whether every child gets the variable `name` from reconciler's environment: PATH,
    HOME, USER, LOGNAME, SHELL, the locale (LANG, LANGUAGE, LC_*), TZ and TMPDIR. An `env:`
    value read from one of them is no secret (`PATH: "${PATH}:/opt/bin"`)."""
    return name in MINIMAL_ENVIRONMENT or name.startswith("LC_")


def minimal_environment(also: Iterable[str] = ()) -> dict[str, str]:
    """The variables of reconciler's environment a child gets: the minimal ones, and `also`."""
    extra = frozenset(also)
    return {n: v for n, v in os.environ.items() if in_minimal_environment(n) or n in extra}


MASK = "***"
WHOLE_WORD = 8  # secrets this long are masked even inside a word
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
# Escape sequences go whole (CSI, OSC/DCS/... up to their terminator or the line's end, and
# two-byte ones), then any other control character but tab and newline: C0, DEL and C1.
_CONTROL = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[]PX^_]|[\x90\x98\x9d-\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


_WORD = re.compile(r"[^\W_]")  # a letter or digit


class Redactor:
    """Replaces known secret values, and any URL userinfo, with `***`.

    A secret of at least WHOLE_WORD characters is masked wherever it appears; a shorter one
    (3 or more) only where it stands alone, not inside a longer run of letters and digits,
    so that a short value (a port passed through `env:`) never cuts a sha, a release name
    or a word apart in what is stored and shown. Shorter than 3: too common to mask.
    """

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        """Remember a value that must never be shown (short values are too common to mask)."""
        if secret and len(secret) >= 3:
            with self._lock:
                if secret not in self._secrets:
                    self._secrets.add(secret)
                    self._pattern = None

    def holds_secret(self, text: str) -> bool:
        """True when `text` is a value this run knows to be secret, or contains one of at
        least 8 characters (a shorter one could be part of PATH); such a variable is kept
        from child processes."""
        with self._lock:
            return any(s == text or (len(s) >= WHOLE_WORD and s in text) for s in self._secrets)

    def __call__(self, text: str) -> str:
        """Return `text` with every secret and URL credential masked."""
        text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
        pattern = self._compiled()
        return pattern.sub(MASK, text) if pattern is not None else text

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(_alone(s) for s in ordered))
            return self._pattern

    def data(self, value: Any) -> Any:
        """`value` (JSON-like: dicts, lists, strings...) with every string in it redacted;
        for what is stored or printed whole, such as a hook's output kept in a history entry."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.data(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(item) for item in value]
        return value


def _alone(secret: str) -> str:
    """A pattern for `secret`; when short, not preceded or followed by a letter or digit
    where its own first or last character is one (so `:8080/` and `=8080` match, `ab8080cd`
    does not)."""
    pattern = re.escape(secret)
    if len(secret) >= WHOLE_WORD:
        return pattern
    before = r"(?<![^\W_])" if _WORD.match(secret[0]) else ""
    after = r"(?![^\W_])" if _WORD.match(secret[-1]) else ""
    return before + pattern + after


def printable(text: str) -> str:
    """`text` without terminal control: what hooks, git or a remote wrote cannot move the
    cursor, clear the screen or set the title where reconciler shows or stores it."""
    return _CONTROL.sub("", text)


def printable_data(value: Any) -> Any:
    """`value` (JSON-like) with `printable` applied to every string in it, keys included."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable_data(key): printable_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_data(item) for item in value]
    return value


def strip_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """Split `https://user:pw@host/x` into (`https://host/x`, user, pw); other URLs pass through."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc or parts.scheme in ("ssh", "git+ssh"):
        return url, None, None
    host = parts.netloc.rsplit("@", 1)[1]
    user, password = parts.username, parts.password  # percent-encoded, as written in a URL
    return (
        urlunsplit(parts._replace(netloc=host)),
        unquote(user) if user is not None else None,
        unquote(password) if password is not None else None,
    )
