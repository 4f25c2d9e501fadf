"""Opening the database and bringing its schema up to date.

SQLite is the embedded default (a file in the workspace, WAL journal so readers never
block the one writer); PostgreSQL is reached with ``WINBACK_DATABASE_URL``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from winback.errors import StoreError


def normalise_url(url: str) -> str:
    """Accept the URLs users copy from their hosting (``postgres://``, ``postgresql://``)
    and pick the psycopg 3 driver for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


CACHE_SIZE = -128 * 1024  # KiB: 128 MB


def open_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite connections get WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r} ({exc})") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
    # the last transactions, which the importers' idempotence makes harmless.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # 128 MB of page cache: the events indexes are large and inserted into at random.
    cursor.execute(f"PRAGMA cache_size={CACHE_SIZE}")
    cursor.close()


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(files("winback.store") / "migrations"))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (creating it when empty)."""
    try:
        command.upgrade(_alembic_config(engine), "head")
    except OperationalError as exc:
        raise StoreError(f"cannot migrate the database {engine.url!r}: {exc.orig}") from None


def check_schema(engine: Engine) -> None:
    """Raise a clear error when the database is not at the newest schema."""
    script = ScriptDirectory.from_config(_alembic_config(engine))
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise StoreError(f"cannot open the database {engine.url!r}: {exc.orig}") from None
    head = script.get_current_head()
    if current != head:
        raise StoreError(
            f"the database {engine.url!r} is at schema {current or 'none'}, winback needs "
            f"{head}: run `winback migrate`"
        )


# A page cache for bulk jobs that write a million rows and their index entries in one
# transaction: every page they dirty stays in memory until the commit, written once
# instead of spilled to the WAL and written again.
BULK_CACHE_SIZE = -1024 * 1024  # KiB: 1 GB


@contextmanager
def bulk_connection(engine: Engine, pragmas: Mapping[str, int]) -> Iterator[Connection]:
    """A connection for a bulk job that commits as it goes (one ``connection.begin()``
    per batch): on SQLite, with ``pragmas`` set until the job ends and their former
    values back after, and any database it attached detached, so the pooled
    connection does not carry them into other work.
    Some pragmas (``temp_store``) cannot change inside a transaction: they are set
    before any."""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            yield connection
            return
        driver = connection.connection.driver_connection
        assert driver is not None
        former = {name: driver.execute(f"PRAGMA {name}").fetchone()[0] for name in pragmas}
        for name, value in pragmas.items():
            driver.execute(f"PRAGMA {name} = {int(value)}")
        try:
            yield connection
        finally:
            for name, value in former.items():
                driver.execute(f"PRAGMA {name} = {int(value)}")
            # A scratch database the job attached (another engine's facts) is let go
            # here, once its transaction has ended: SQLite refuses to detach before.
            for _, name, _ in driver.execute("PRAGMA database_list").fetchall():
                if name not in ("main", "temp"):
                    driver.execute(f'DETACH DATABASE "{name}"')


@contextmanager
def bulk_transaction(
    engine: Engine, pragmas: Mapping[str, int], *, writer: bool = False
) -> Iterator[Connection]:
    """``engine.begin()`` for a bulk job of one transaction, with the ``pragmas`` of
    :func:`bulk_connection`. ``writer``: on SQLite the transaction takes the write
    lock as it begins, waiting for another writer to finish (the busy timeout) rather
    than failing at its first write because one committed since it began reading."""
    with bulk_connection(engine, pragmas) as connection, connection.begin():
        if writer and connection.dialect.name == "sqlite":
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            except OperationalError as exc:
                raise StoreError(
                    f"{engine.url.database}: another command kept the database for "
                    f"writing past the wait ({exc.orig}): run this one again when it "
                    "has finished"
                ) from None
        yield connection
