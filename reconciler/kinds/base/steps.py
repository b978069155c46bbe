"""The shape of plan steps: field types and checks the kinds' step models share.

A saved plan is data read back from a file anyone may have edited: its kind's model (one
per op, `Controller.step_models`) checks the shape of every field before the plan is
compared with a plan made now (engine/staleness.py), so garbage is refused with the field
named before anything is observed. Models are strict (a number is not a string) and refuse
unknown fields. What a step may name (a destination, a target, a directory) is settled by
that comparison: only the plan made now is applied.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from reconciler.git.refs import is_sha

_DIGEST = re.compile(r"^[0-9a-f]{64}\Z")
# git check-ref-format: no control characters, space, ~ ^ : ? * [ or backslash anywhere.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def shown(value: str, limit: int = 60) -> str:
    """A value for an error message: quoted, control characters escaped, bounded."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def check_sha(value: str) -> str:
    """Accept a full commit sha: 40 (sha1) or 64 (sha256) lowercase hex digits."""
    if not is_sha(value):
        raise ValueError(f"not a commit sha (40 or 64 lowercase hex digits): {shown(value)}")
    return value


def check_digest(value: str) -> str:
    """Accept a sha256 hex digest of content."""
    if not _DIGEST.match(value):
        raise ValueError(f"not a sha256 digest (64 lowercase hex digits): {shown(value)}")
    return value


def ref_format_problem(name: str) -> str | None:
    """Why `name` is not a full ref name under the rules of `git check-ref-format`
    (without --allow-onelevel), or None when it is one."""
    if name.startswith("-"):
        return "starts with '-'"
    if name == "@" or "@{" in name:
        return "is '@' or contains '@{'"
    if _REF_FORBIDDEN.search(name):
        return "contains a control character, a space or one of ~ ^ : ? * [ \\"
    if ".." in name:
        return "contains '..'"
    if name.startswith("/") or name.endswith("/") or "//" in name:
        return "starts or ends with '/' or contains '//'"
    if name.endswith("."):
        return "ends with '.'"
    parts = name.split("/")
    if len(parts) < 2:
        return "has no '/' (a full ref name is like refs/heads/main)"
    if any(p.startswith(".") or p.endswith(".lock") for p in parts):
        return "has a component that starts with '.' or ends with '.lock'"
    return None


def check_ref(value: str) -> str:
    """Accept a full ref name that `git check-ref-format` accepts."""
    problem = ref_format_problem(value)
    if problem is not None:
        raise ValueError(f"not a valid ref name: {shown(value)} {problem}")
    return value


def check_text(value: str) -> str:
    """Accept a one-line-or-more message (a reason) of bounded size."""
    if len(value) > 100_000:
        raise ValueError("longer than 100000 characters")
    return value


Sha = Annotated[str, AfterValidator(check_sha)]
Digest = Annotated[str, AfterValidator(check_digest)]
RefName = Annotated[str, AfterValidator(check_ref)]
Text = Annotated[str, AfterValidator(check_text)]


class StepModel(BaseModel):
    """Fields every step has; a kind's model per op adds its own (and a Literal `op`)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    op: str
    reason: Text
