"""Fault tolerance: the shared-store lock (the FT state machine comes later)."""
