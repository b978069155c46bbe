"""Time as the store keeps it: ISO-8601 UTC stamps (`2026-12-04T21:13:03.123Z`) written, read."""

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


def now() -> str:
    """The current time as the store writes it."""
    return stamp(utc_now())
