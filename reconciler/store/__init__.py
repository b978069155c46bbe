"""The SQLite state store (the only module that writes SQL)."""

from reconciler.store.database import now
from reconciler.store.locking import LockHolder
from reconciler.store.records import Observation, ResourceRecord, Store

__all__ = ["LockHolder", "Observation", "ResourceRecord", "Store", "now"]
