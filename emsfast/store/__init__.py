"""Persistent state behind one narrow interface (``Store``)."""

from emsfast.store.base import DurableRecord, RecoveredState, Store, StoredMessage
from emsfast.store.memory import MemoryStore

__all__ = ["DurableRecord", "MemoryStore", "RecoveredState", "Store", "StoredMessage"]
