"""Persistence: cases, prediction summaries, reader studies and the audit log (SQLAlchemy)."""

from engine.store.db import (
    CaseSummary,
    Store,
    StoredPrediction,
    default_db_url,
    head_revision,
    parse_summary,
    record_summary,
)
from engine.store.schema import StoreError

__all__ = ["CaseSummary", "Store", "StoreError", "StoredPrediction", "default_db_url", "head_revision",
           "parse_summary", "record_summary"]
