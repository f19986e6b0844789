"""Alembic migration scripts of the OncoLens store; `engine.store.db.Store` runs them on open."""
