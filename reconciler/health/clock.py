"""The time health reads: now in UTC, and the store's ISO stamps (`…Z`) read and written."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)


def parse_stamp(stamp: str) -> datetime:
    """A stamp the store wrote (`2026-12-04T21:13:03.123Z`) as an aware datetime."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def stamp(moment: datetime, timespec: str = "milliseconds") -> str:
    """`moment` as the store writes it."""
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")
