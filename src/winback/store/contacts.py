"""Queries on contacts and events: the write path of the importers, and look-ups by
address. Everything goes through SQLAlchemy Core with bound parameters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Result,
    bindparam,
    func,
    insert,
    or_,
    select,
    union,
    update,
)
from sqlalchemy import column as sql_column
from sqlalchemy import table as sql_table

from winback.store.arrow import attach_arrow, detach_arrow, stored
from winback.store.chunks import chunks
from winback.store.engine import bulk_connection
from winback.store.history import events_slice, high_water
from winback.store.schema import contacts, events

if TYPE_CHECKING:
    import pyarrow as pa


def contact_keys(
    connection: Connection, size: int = 100_000
) -> Iterator[tuple[Sequence[int], Sequence[str | None], Sequence[str | None]]]:
    """Every contact's id, email and phone, as three columns of ``size`` contacts at a
    time: the events importer resolves millions of rows against them (see
    :mod:`winback.ingest.keys`) instead of one query per row."""
    query = select(contacts.c.id, contacts.c.email, contacts.c.phone)
    # On the statement: a connection's execution_options() change the connection itself.
    for rows in connection.execute(query.execution_options(yield_per=size)).partitions():
        ids, emails, phones = zip(*rows, strict=True)
        yield ids, emails, phones


def contacts_by_address(
    connection: Connection, emails: Iterable[str], phones: Iterable[str]
) -> list[dict[str, Any]]:
    """The stored contacts that have one of these emails or phones."""
    emails, phones = list(set(emails)), list(set(phones))
    if connection.dialect.name == "sqlite":
        # Each list goes to SQLite as one JSON array joined to the table (an import asks
        # for a whole block of addresses at once): rendering IN lists of thousands of
        # parameters cost SQLAlchemy more than the look-ups themselves. One query, so a
        # contact found by its email and by its phone is read (its JSON decoded) once.
        by_email = func.json_each(bindparam("emails")).table_valued("value")
        by_phone = func.json_each(bindparam("phones")).table_valued("value")
        ids = union(
            select(contacts.c.id).join(by_email, contacts.c.email == by_email.c.value),
            select(contacts.c.id).join(by_phone, contacts.c.phone == by_phone.c.value),
        )
        result = connection.execute(
            select(contacts).where(contacts.c.id.in_(ids)),
            {"emails": json.dumps(emails), "phones": json.dumps(phones)},
        )
        return [row for _, row in _by_id(result)]
    found: dict[int, dict[str, Any]] = {}
    for column, values in ((contacts.c.email, sorted(emails)), (contacts.c.phone, sorted(phones))):
        for chunk in chunks(values):
            found.update(_by_id(connection.execute(select(contacts).where(column.in_(chunk)))))
    return list(found.values())


def _by_id(result: Result[Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each row of ``result`` as a dictionary, with its id (zipping the column names onto
    plain rows costs half of what SQLAlchemy's mappings do)."""
    names = list(result.keys())
    for row in result:
        found = dict(zip(names, row, strict=True))
        yield found["id"], found


def channel_statuses(connection: Connection, ids: Iterable[int]) -> dict[int, dict[str, str]]:
    """``{contact id: {"email": status, "sms": status}}`` for these contacts."""
    wanted = sorted(set(ids))
    found: dict[int, dict[str, str]] = {}
    query = select(contacts.c.id, contacts.c.email_status, contacts.c.sms_status)
    for batch in chunks(wanted):
        rows = connection.execute(query.where(contacts.c.id.in_(batch)))
        for contact_id, email_status, sms_status in rows:
            found[contact_id] = {"email": email_status, "sms": sms_status}
    return found


def find_contact(connection: Connection, address: str) -> dict[str, Any] | None:
    """One contact by normalised email or E.164 phone."""
    row = (
        connection.execute(
            select(contacts).where(or_(contacts.c.email == address, contacts.c.phone == address))
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def insert_contact_columns(connection: Connection, columns: Mapping[str, Sequence[Any]]) -> None:
    """Insert new contacts given a column at a time (a list of values per column name,
    all as long; a column left out is NULL).

    On SQLite the rows go to the driver's ``executemany`` as tuples, each value through
    its column type's own bind processor (JSON text, datetime text, 0/1), so they are
    stored exactly as SQLAlchemy stores them without its per-row parameter handling. A
    value object that several rows share (an importer's one list per distinct set of
    tags, its one ``now``) is processed once."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return
    if connection.dialect.name != "sqlite":
        rows = [
            dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
        ]
        connection.execute(contacts.insert(), rows)
        return
    processed = []
    for name in names:
        values = columns[name]
        process = (
            contacts.c[name]
            .type.dialect_impl(connection.dialect)
            .bind_processor(connection.dialect)
        )
        if process is None:
            processed.append(values)
            continue
        keys = list(map(id, values))
        distinct = dict(zip(keys, values, strict=True))
        if len(distinct) == len(keys):
            processed.append(list(map(process, values)))
            continue
        done = {key: process(value) for key, value in distinct.items()}
        processed.append(list(map(done.__getitem__, keys)))
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(
        f"INSERT INTO contacts ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
        list(zip(*processed, strict=True)),
    )


def update_contacts(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite the given columns of existing contacts (each row has ``id`` and the same
    set of columns)."""
    if not rows:
        return
    columns = [name for name in rows[0] if name != "id"]
    statement = (
        update(contacts)
        .where(contacts.c.id == bindparam("_id"))
        .values({name: bindparam(name) for name in columns})
    )
    connection.execute(statement, [{**row, "_id": row["id"]} for row in rows])


EVENT_COLUMNS = tuple(column.name for column in events.columns if column.name != "id")


def dedup_key(*parts: object) -> bytes:
    """The 16-byte ``dedup_key`` of an event made of ``parts`` (a source, the provider's
    event id, an outbox id and the outcome...): the unique index then makes a second
    record of the same fact impossible. Imported events have their own, time-first key
    (:func:`winback.ingest.event_blocks.event_key`)."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def insert_events(connection: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Insert events given as mappings of column names (a missing column is NULL),
    skipping those already stored (same ``dedup_key``); returns how many were new."""
    return insert_event_rows(
        connection, EVENT_COLUMNS, [event_row(row, EVENT_COLUMNS) for row in rows]
    )


# The columns an imported event sets; the others (bot, ip, outbox_id) stay NULL.
EVENT_FIELDS = (
    "contact_id",
    "type",
    "channel",
    "occurred_at",
    "amount",
    "currency",
    "campaign",
    "message_id",
    "machine_open",
    "user_agent",
    "url",
    "body",
    "discount_code",
    "source",
    "dedup_key",
)


# 256 MB of page cache for an import of events (the default is 128 MB): the digest
# index takes inserts at random and every page it keeps saves a read.
IMPORT_CACHE_SIZE = -256 * 1024  # KiB
# An import at least this large, and at least as large as the events already stored,
# drops the secondary indexes of events and builds them again at the end.
BULK_ROWS = 1_000_000


@contextmanager
def bulk_events(engine: Engine, expected_rows: int) -> Iterator[Connection]:
    """The connection for an import of ``expected_rows`` events, which commits a batch
    at a time, with :data:`IMPORT_CACHE_SIZE` (see :func:`bulk_connection`). On SQLite,
    when ``expected_rows`` is at least :data:`BULK_ROWS` and at least the events already
    stored, the two secondary indexes are dropped and built again at the end (in one sort
    each, where keeping them up to date costs a random B-tree insert per row and index,
    the larger part of the import).
    The unique digest index stays: it is what makes a re-import add nothing.

    An import interrupted on the way leaves the indexes out; the next import of events
    builds them first."""
    rebuild = False
    with engine.begin() as connection:
        _create_event_indexes(connection)
        if connection.dialect.name == "sqlite" and expected_rows >= BULK_ROWS:
            rebuild = expected_rows >= high_water(connection)
            if rebuild:
                for index in events.indexes:
                    index.drop(connection)
    try:
        with bulk_connection(engine, {"cache_size": IMPORT_CACHE_SIZE}) as connection:
            yield connection
    finally:
        if rebuild:
            # After the import's connection has its usual page cache back: the sort that
            # builds an index takes as much memory again as the page cache.
            with engine.begin() as connection:
                _create_event_indexes(connection)


def _create_event_indexes(connection: Connection) -> None:
    for index in events.indexes:
        index.create(connection, checkfirst=True)


def event_row(event: dict[str, Any], fields: Sequence[str]) -> tuple[Any, ...]:
    """An event as a tuple of ``fields`` for :func:`insert_event_rows`."""
    return tuple(
        sqlite_time(event[name]) if name == "occurred_at" else event.get(name) for name in fields
    )


def insert_event_rows(
    connection: Connection, fields: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> int:
    """Insert events given as tuples of ``fields`` (some of :data:`EVENT_COLUMNS`, with
    ``occurred_at`` as the text :func:`sqlite_time` writes), skipping those already
    stored; returns how many were new.

    Tuples go straight to SQLite's ``executemany`` (SQLAlchemy's per-row parameter
    processing cost as much as the insert itself at millions of rows); on PostgreSQL
    ``COPY`` into a temporary table, then one ``INSERT ... ON CONFLICT DO NOTHING``."""
    if not rows:
        return 0
    driver = connection.connection.driver_connection
    names = ", ".join(fields)
    if connection.dialect.name == "sqlite":
        cursor = driver.cursor()  # type: ignore[union-attr]
        placeholders = ", ".join("?" for _ in fields)
        cursor.executemany(f"INSERT OR IGNORE INTO events ({names}) VALUES ({placeholders})", rows)
        return int(cursor.rowcount)
    with driver.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS import_events ON COMMIT DELETE ROWS "
            f"AS SELECT {', '.join(EVENT_COLUMNS)} FROM events WITH NO DATA"
        )
        with cursor.copy(f"COPY import_events ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f"INSERT INTO events ({names}) SELECT {names} FROM import_events "
            "ON CONFLICT (dedup_key) DO NOTHING"
        )
        inserted = int(cursor.rowcount)
    return inserted


#: The name of the scratch database a block of imported events is attached under.
_BLOCK = "import"


def insert_event_table(connection: Connection, table: pa.Table, scratch: Path | None) -> int:
    """Insert the events of ``table`` (columns of ``events`` and ``line``: of two rows
    with one ``dedup_key``, the one of the first line is kept), skipping those already
    stored; returns how many were new.

    On SQLite the table goes in through ADBC's bulk ingest into a scratch database in
    ``scratch`` (:func:`event_table_scratch`), attached, then one ``INSERT ... SELECT`` in
    digest order, which keeps the unique index's inserts close together (binding a
    block's rows one by one from Python cost more than the inserts). Without a scratch
    folder (PostgreSQL) the rows go to :func:`insert_event_rows` (``COPY``), in the same
    order."""
    if not table.num_rows:
        return 0
    fields = [name for name in table.column_names if name != "line"]
    sqlite = connection.dialect.name == "sqlite"
    kept = stored(table.select(fields), events.columns, sqlite=sqlite)
    kept = kept.append_column("line", table["line"])
    if scratch is None:
        ordered = kept.sort_by([("dedup_key", "ascending"), ("line", "ascending")])
        columns = [ordered[name].to_pylist() for name in fields]
        return insert_event_rows(connection, fields, list(zip(*columns, strict=True)))
    schema = attach_arrow(connection, scratch, _BLOCK, {"block": kept})
    block = sql_table("block", *(sql_column(name) for name in table.column_names), schema=schema)
    rows = select(*(block.c[name] for name in fields)).order_by(block.c.dedup_key, block.c.line)
    statement = insert(events).prefix_with("OR IGNORE").from_select(fields, rows)
    return int(connection.execute(statement).rowcount)


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


def sqlite_time(moment: datetime | None) -> str | None:
    """A naive UTC datetime as SQLAlchemy stores it in SQLite (the year on four digits,
    which ``strftime`` does not pad)."""
    return None if moment is None else moment.isoformat(sep=" ", timespec="microseconds")


def set_channel_status(
    connection: Connection, changes: Sequence[dict[str, Any]], channel: str
) -> None:
    """Record refusals (``status``, ``at``) for contacts on one channel."""
    if not changes:
        return
    status = contacts.c[f"{channel}_status"]
    statement = (
        update(contacts)
        .where(contacts.c.id == bindparam("_id"))
        .values({status.name: bindparam("status"), f"{channel}_status_at": bindparam("at")})
    )
    connection.execute(statement, [{**change, "_id": change["id"]} for change in changes])


def count_contacts(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(contacts)).scalar_one())


def summary_totals(
    connection: Connection, ids: Sequence[int], source_prefix: str
) -> dict[int, tuple[float, datetime | None]]:
    """The purchase summaries already stored for these contacts (events whose source
    starts with ``source_prefix``): their total amount and latest date, by contact."""
    found: dict[int, tuple[float, datetime | None]] = {}
    for chunk in chunks(sorted(ids)):
        bought = events_slice(connection, contacts=chunk, types=["purchase"])
        query = (
            select(
                bought.c.contact_id,
                func.coalesce(func.sum(bought.c.amount), 0.0),
                func.max(bought.c.occurred_at),
            )
            .where(bought.c.source.startswith(source_prefix, autoescape=True))
            .group_by(bought.c.contact_id)
        )
        for contact, spent, latest in connection.execute(query):
            found[contact] = (float(spent), latest)
    return found
