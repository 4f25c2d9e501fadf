"""Arrow tables into and out of the operational store, for the engines that compute
outside it (DuckDB, Spark) and the events import
(:func:`winback.store.contacts.insert_event_table`).

Into SQLite through ADBC's bulk ingest into a scratch database that the run's
connection attaches (:func:`attach_arrow`): a million rows turned into Python tuples
for ``executemany`` cost more than the engine took to compute them. Out of SQLite
through ADBC as well (:class:`CommittedRead`, in a process of its own), which types
each column from the values of its first rows: a column null there and text further
down fails the read, so a first row of the column's own type is read with them and
dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    Table,
    Text,
    cast,
    select,
    union_all,
)
from sqlalchemy import literal as sql_literal
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.base import ReadOnlyColumnCollection

from winback.errors import StoreError

if TYPE_CHECKING:
    import pyarrow as pa

#: The column of :class:`CommittedRead`'s typing row (1 there, 0 on the real rows).
_PROBE = "winback_probe"
#: :class:`CommittedRead`'s reader; its arguments: the database's path, the probe
#: column and a JSON list of (Arrow file, query).
_READER = """
import json, sys
import adbc_driver_sqlite.dbapi as adbc
import pyarrow as pa
import pyarrow.compute as pc
database, probe, jobs = sys.argv[1:]
try:
    with adbc.connect(database) as reader, reader.cursor() as cursor:
        for path, query in json.loads(jobs):
            cursor.execute(query)
            found = cursor.fetch_arrow_table()
            found = found.filter(pc.equal(found[probe], 0)).drop_columns([probe])
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, found.schema) as out:
                out.write_table(found)
except Exception as exc:
    lines = str(exc).strip().splitlines()
    sys.exit(lines[0] if lines else type(exc).__name__)
"""


def stored(
    data: pa.Table, target: ReadOnlyColumnCollection[str, Column[Any]], *, sqlite: bool
) -> pa.Table:
    """``data`` with each column as the store keeps the column of ``target`` (a table's
    ``columns``) of the same name: times naive UTC (in SQLite the text SQLAlchemy
    writes, six digits of microseconds), dates (ISO text in SQLite), integers, floats,
    booleans (0 and 1 in SQLite)."""
    import pyarrow as pa

    columns = []
    for name, values in zip(data.column_names, data.columns, strict=True):
        kind = target[name].type
        if isinstance(kind, DateTime):
            values = values.cast(pa.timestamp("us"))
            values = values.cast(pa.string()) if sqlite else values
        elif isinstance(kind, Date):
            values = values.cast(pa.date32())
            values = values.cast(pa.string()) if sqlite else values
        elif isinstance(kind, Boolean):
            values = values.cast(pa.int64()) if sqlite else values.cast(pa.bool_())
        elif isinstance(kind, Integer):
            values = values.cast(pa.int64())
        elif isinstance(kind, Float):
            values = values.cast(pa.float64())
        columns.append(values)
    return pa.table(columns, names=data.column_names)


def attach_arrow(
    connection: Connection, scratch: Path, name: str, tables: dict[str, pa.Table]
) -> str:
    """Ingest ``tables`` (already :func:`stored`) into ``scratch/<name>.db`` and attach
    it to the run's SQLite connection; returns the schema name to read them under. The
    attached database is let go with the connection
    (:func:`winback.store.engine.bulk_connection`)."""
    import adbc_driver_manager
    import adbc_driver_sqlite.dbapi as adbc

    path = scratch / f"{name}.db"
    try:
        with adbc.connect(str(path)) as bulk, bulk.cursor() as cursor:
            for table_name, data in tables.items():
                cursor.adbc_ingest(table_name, data)
            bulk.commit()
    except (adbc_driver_manager.Error, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"{path}: the scratch database cannot be written ({reason})") from None
    schema = f"winback_{name}"
    connection.exec_driver_sql(f"ATTACH DATABASE ? AS {schema}", (str(path),))
    return schema


def detach_arrow(connection: Connection, name: str) -> None:
    """Detach and delete what :func:`attach_arrow` attached under ``name`` (if it did), once the
    transaction that read it has ended (SQLite refuses before). Through the driver: the
    connection stays outside a transaction, for the caller's next ``begin()``."""
    driver = connection.connection.driver_connection
    assert driver is not None
    path = next(
        (
            found
            for _, schema, found in driver.execute("PRAGMA database_list")
            if schema == f"winback_{name}"
        ),
        None,
    )
    if path is not None:
        driver.execute(f"DETACH DATABASE winback_{name}")
        Path(path).unlink()


class CommittedRead:
    """Rows of tables as last committed in the SQLite file ``database``, read while the
    caller goes on: ``wanted`` maps a name to what to read (:class:`Wanted`);
    :meth:`tables` waits for them. Text stays text: the caller gives each column its
    type. Use it as a context manager: the reader is stopped if the caller fails.

    Read by a process of its own: ADBC brings a SQLite library of its own, and two
    SQLite libraries in one process break each other's file locks (closing one's file
    drops the other's locks), which can corrupt the database. In another process it is
    one more reader, which WAL lets read beside the run's open transaction; and it
    reads on the other core while this process computes."""

    def __init__(self, database: Path, scratch: Path, wanted: dict[str, Wanted]) -> None:
        # Absolute: a relative name beginning with ``file:`` is a URI to SQLite.
        database = database.resolve()
        self.database = database
        self.sources = {name: want.table for name, want in wanted.items()}
        self.paths = {name: scratch / f"{name}.arrow" for name in wanted}
        jobs = [(str(self.paths[name]), _typed_query(want)) for name, want in wanted.items()]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _READER, str(database), _PROBE, json.dumps(jobs)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __enter__(self) -> CommittedRead:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()

    def tables(self) -> dict[str, pa.Table]:
        """The tables read, by name, once the reader is done."""
        import pyarrow as pa

        _, errors = self.process.communicate()
        if self.process.returncode:
            lines = errors.strip().splitlines() or ["no message"]
            raise StoreError(f"cannot read {self.database} for the other engine: {lines[-1]}")
        found = {}
        for name, path in self.paths.items():
            with pa.memory_map(str(path)) as source:
                found[name] = pa.ipc.open_file(source).read_all()
        return found


@dataclass(frozen=True)
class Wanted:
    """What :class:`CommittedRead` reads of a table: columns, and the rows ``where``
    holds (all when None)."""

    table: Table
    names: list[str]
    where: ColumnElement[bool] | None = None


def _typed_query(want: Wanted) -> str:
    """SQLite's text of the rows wanted after a typing row."""
    table, names = want.table, want.names
    typing_row = select(
        sql_literal(1).label(_PROBE), *(_typing_value(table, column) for column in names)
    )
    # Each value cast to its column's storage class: a value another tool stored in
    # another class (a boolean as text) would fail the read past the typed rows.
    real = select(
        sql_literal(0).label(_PROBE),
        *(cast(table.c[column], _storage(table.c[column].type)).label(column) for column in names),
    )
    if want.where is not None:
        real = real.where(want.where)
    query = union_all(typing_row, real)
    return str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))


def _storage(kind: Any) -> Any:
    """The SQLite storage class a value of the column type ``kind`` is read as."""
    if isinstance(kind, Float):
        return Float()
    return Integer() if isinstance(kind, (Integer, Boolean)) else Text()


def _typing_value(table: Table, name: str) -> object:
    storage = _storage(table.c[name].type)
    value: object = 0.5 if isinstance(storage, Float) else 0 if isinstance(storage, Integer) else ""
    return sql_literal(value, storage).label(name)
