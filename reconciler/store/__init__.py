"""The SQLite state store (the only module that writes SQL)."""

from reconciler.store.clock import now, parse_stamp, stamp, utc_now
from reconciler.store.locking import LockHolder
from reconciler.store.records import Observation, ResourceRecord, Store

__all__ = [
    "LockHolder",
    "Observation",
    "ResourceRecord",
    "Store",
    "now",
    "parse_stamp",
    "stamp",
    "utc_now",
]
