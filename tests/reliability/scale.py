"""How big a reliability run is: short inside `make test`, full under `make reliability`."""

from __future__ import annotations

import os

FULL = os.environ.get("RELIABILITY_SIZE") == "full"


def size(short: int, full: int) -> int:
    """`full` under `make reliability`, `short` otherwise (CI must stay fast)."""
    return full if FULL else short


def seed() -> int:
    """The seed of random schedules: RELIABILITY_SEED, else a fixed one so runs repeat."""
    return int(os.environ.get("RELIABILITY_SEED", "20261122"))
