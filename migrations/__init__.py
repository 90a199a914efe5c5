"""Alembic migrations of the database schema, installed as aggregator.migrations (see pyproject.toml)."""
