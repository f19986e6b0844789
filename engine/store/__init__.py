"""Persistence: cases, prediction summaries and an append-only audit log in SQLite or PostgreSQL."""

from engine.store.db import CaseSummary, Store, default_db_url, head_revision
from engine.store.schema import StoreError

__all__ = ["CaseSummary", "Store", "StoreError", "default_db_url", "head_revision"]
