"""Alembic environment for the OncoLens store.

`Store` hands over its own open connection in `config.attributes["connection"]`, so the SQLite
pragmas and the write lock it takes apply to the migration too. Without one (a developer running
`alembic` by hand) an engine is made from the `sqlalchemy.url` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from engine.store.schema import Base

config = context.config
target_metadata = Base.metadata


def _configure(**kwargs) -> None:
    # render_as_batch: SQLite cannot ALTER most things in place; batch mode copies the table instead.
    context.configure(target_metadata=target_metadata, render_as_batch=True, **kwargs)


def run_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`)."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.begin() as own_connection:
            _configure(connection=own_connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
