"""Alembic environment: run the migrations on the engine ``Store`` passes in (no alembic.ini, no URL here)."""

from alembic import context

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
