"""Alembic environment: runs migrations on the connection the store hands over (or alembic.ini's URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from aggregator.store.tables import metadata

config = context.config


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # developers: `alembic -c alembic.ini revision --autogenerate -m "..."`
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.begin() as conn:
        _run(conn)
