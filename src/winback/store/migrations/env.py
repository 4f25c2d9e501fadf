"""Alembic environment: runs on the engine the workspace hands over, never on a URL
from an ini file, so migrations follow ``WINBACK_DATABASE_URL`` like everything else."""

from alembic import context

from winback.store.schema import metadata

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
