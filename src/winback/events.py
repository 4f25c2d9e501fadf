"""The one path that writes events: store them once (a row whose ``dedup_key`` is stored
already is skipped), then hand them to :func:`winback.compliance.refusals.apply_refusals`,
which turns an unsubscribe, a hard bounce, a complaint, a STOP reply or too many soft
bounces into a status change and a suppression. Every writer calls it: the import of
events, the dispatcher, the tracking server, the preference page and the webhooks; so no
writer can store a refusal and forget to act on it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from winback.compliance.refusals import apply_refusals
from winback.store.arrow import attach_arrow, detach_arrow, stored
from winback.store.contacts import insert_event_rows, insert_events
from winback.store.schema import events
from winback.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa


def record_events(
    connection: Connection,
    workspace: Workspace,
    rows: Sequence[dict[str, Any]],
    *,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Store events given as mappings of column names (a missing column is NULL) and
    apply the refusals among them, in the caller's transaction; returns how many rows
    were new. ``actor`` and ``details`` go to the audit records of the refusals."""
    added = insert_events(connection, rows)
    apply_refusals(connection, workspace, rows, now=now, actor=actor, details=details)
    return added


def record_event_table(
    connection: Connection,
    workspace: Workspace,
    table: pa.Table,
    refusals: Sequence[Mapping[str, Any]],
    *,
    scratch: Path | None,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """The bulk form of :func:`record_events`, for the import of a block: ``table``
    holds columns of ``events`` and ``line`` (:func:`insert_event_table`, which uses
    ``scratch``), and ``refusals`` the mappings of those among them that may refuse (the
    caller has them at hand already, sorted out while it read the block). Returns how
    many rows were new."""
    added = insert_event_table(connection, table, scratch)
    apply_refusals(connection, workspace, refusals, now=now, actor=actor, details=details)
    return added


#: The name of the scratch database a block of imported events is attached under.
_BLOCK = "import"


def insert_event_table(connection: Connection, table: pa.Table, scratch: Path | None) -> int:
    """Insert the events of ``table`` (columns of ``events`` and ``line``: of two rows
    with one ``dedup_key``, the one of the first line is kept), skipping those already
    stored; returns how many were new.

    On SQLite the table goes in through ADBC's bulk ingest into a scratch database in
    ``scratch`` (:func:`event_table_scratch`), attached, then one ``INSERT ... SELECT`` in
    digest order, which keeps the unique index's inserts close together (binding a
    block's rows one by one from Python cost more than the inserts). On PostgreSQL the
    rows go through ``COPY``."""
    fields = [name for name in table.column_names if name != "line"]
    if scratch is None:
        ordered = table.sort_by([("dedup_key", "ascending"), ("line", "ascending")])
        columns = [ordered[name].to_pylist() for name in fields]
        return insert_event_rows(connection, fields, list(zip(*columns, strict=True)))
    kept = stored(table.select(fields), events, sqlite=True).append_column("line", table["line"])
    schema = attach_arrow(connection, scratch, _BLOCK, {"block": kept})
    names = ", ".join(fields)
    inserted = connection.exec_driver_sql(
        f"INSERT OR IGNORE INTO events ({names}) "
        f"SELECT {names} FROM {schema}.block ORDER BY dedup_key, line"
    )
    return int(inserted.rowcount)


@contextmanager
def event_table_scratch(connection: Connection) -> Iterator[Path | None]:
    """The folder of an import's scratch databases (:func:`insert_event_table`), deleted
    at its end: on SQLite a new one beside the database file, which the import writes
    already (a temporary folder may be missing or full). None on PostgreSQL, which needs
    none."""
    if connection.dialect.name != "sqlite":
        yield None
        return
    database = Path(connection.engine.url.database or "").resolve()
    with TemporaryDirectory(prefix=".winback-import-", dir=database.parent) as scratch:
        yield Path(scratch)


def release_event_table(connection: Connection, scratch: Path | None) -> None:
    """Detach and delete the scratch database of :func:`insert_event_table` once its
    transaction is over (SQLite refuses before), for the next block's."""
    if scratch is not None:
        detach_arrow(connection, _BLOCK)
