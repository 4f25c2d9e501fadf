"""The store: schema, migrations, and the queries that write the operational data."""

from winback.store.engine import check_schema, migrate, open_engine
from winback.store.schema import metadata

__all__ = ["check_schema", "metadata", "migrate", "open_engine"]
