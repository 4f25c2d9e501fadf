"""The PostgreSQL side of ``bench/score.py`` (issue 17): a throwaway server sized for
this machine, and the synthetic base written straight into the database with COPY.

The load is the one a data engineer does for a bulk migration: the events' keys and
indexes are dropped, contacts and events are copied in one transaction that first
empties both tables (so, under ``wal_level = minimal``, the copied rows skip the
write-ahead log and ``COPY ... FREEZE`` writes them frozen: the first score does not
rewrite the whole table to set hint bits), then each key and index is built again with
the definition the migrations gave it, and ``VACUUM ANALYZE`` gives the planner its
statistics. The generator is ``bench/synthetic.py``'s, so the base is the SQLite one.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.copy import QueuedLibpqWriter
from synthetic import (
    CONTACT_COLUMNS,
    EVENT_COLUMNS,
    SEED,
    USER_AGENTS,
    WINDOW,
    EventBlock,
    contact_rows,
    dedup_key_text,
    draw_base,
    draw_events,
    instants,
    next_day_events,
)

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 1_000_000
# For 2 cores and 24 GiB shared with other work. fsync stays on: the figures are those
# of a durable server. synchronous_commit off only lets a commit return before its
# write-ahead log reaches the disk (a crash loses the last commits, never consistency).
# wal_level minimal (no replica) lets the load skip the log; a large max_wal_size keeps
# checkpoints out of the middle of the load and the score.
BENCH_SETTINGS = {
    "shared_buffers": "4GB",
    "effective_cache_size": "16GB",
    "work_mem": "256MB",
    "maintenance_work_mem": "2GB",
    "max_parallel_workers_per_gather": "2",
    "max_parallel_maintenance_workers": "2",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "32GB",
    "checkpoint_timeout": "30min",
    "synchronous_commit": "off",
}
CSV = "FORMAT csv"


def start_server(root: Path) -> Any:
    """Start a server with BENCH_SETTINGS whose data lives in ``root`` (new or empty)."""
    sys.path.insert(0, str(ROOT))
    from tests.pgserver import PostgresServer, find_bindir

    if root.exists() and any(root.iterdir()):
        raise SystemExit(f"--start-postgres {root}: the folder is not empty")
    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (apt-get install postgresql)")
    server = PostgresServer(bindir, root=root, settings=BENCH_SETTINGS)
    server.start()
    return server


def say(line: str) -> None:
    """Progress, on stderr: stdout carries the phase's figures to the parent."""
    print(line, file=sys.stderr, flush=True)


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) as psycopg takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _event_table(block: EventBlock) -> pa.Table:
    message = pa.array(block.message, mask=block.message < 0).cast(pa.string())
    agents = pa.array(block.user_agent, mask=block.user_agent < 0)
    return pa.table(
        [
            block.ids,
            block.contact,
            pa.array(block.kind),
            pa.array(block.channel),
            pa.array(instants(block.seconds)),
            pa.array(block.amount, from_pandas=True),
            message,
            pa.array(block.machine == 1, mask=block.machine < 0),
            pc.take(pa.array(USER_AGENTS), agents),
            pa.array([dedup_key_text(i) for i in block.ids.tolist()]),
        ],
        names=[name.strip() for name in EVENT_COLUMNS.split(",")],
    )


def _csv(table: pa.Table) -> memoryview:
    # Nulls are written unquoted and empty, which COPY's csv format reads as NULL.
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return memoryview(sink.getvalue())


def copy_events(cursor: psycopg.Cursor[Any], block: EventBlock) -> None:
    with cursor.copy(f"COPY events ({EVENT_COLUMNS}) FROM STDIN ({CSV})") as copy:
        copy.write(_csv(_event_table(block)))


def _keys(cursor: psycopg.Cursor[Any]) -> list[tuple[str, str, str]]:
    """The events' constraints (primary, unique, foreign keys) and other indexes:
    (name, statement that drops it, statement that builds it again)."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'events'::regclass AND contype IN ('p', 'u', 'f') ORDER BY conname"
    )
    constraints = cursor.fetchall()
    keys = [
        (
            name,
            f"ALTER TABLE events DROP CONSTRAINT {name}",
            f"ALTER TABLE events ADD CONSTRAINT {name} {definition}",
        )
        for name, definition in constraints
    ]
    owned = {name for name, _ in constraints}
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'")
    keys += [(n, f"DROP INDEX {n}", d) for n, d in cursor.fetchall() if n not in owned]
    cursor.execute("SELECT count(*) FROM pg_constraint WHERE confrelid = 'events'::regclass")
    if cursor.fetchone() != (0,):
        raise SystemExit("a table refers to events: the bench does not know that schema")
    return keys


def load(url: str, contacts: int, events: int) -> dict[str, Any]:
    """Fill the empty, migrated database at ``url`` with the synthetic base; return the
    seconds of the copy and of the rebuild of the keys and indexes."""
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM contacts")
        if cursor.fetchone() != (0,):
            raise SystemExit("the database at --database-url is not empty")
        keys = _keys(cursor)
        for _, drop, _ in keys:
            cursor.execute(drop)
        # The contacts' own keys stay: other tables refer to them, and 5M rows is a
        # small part of the load. CASCADE reaches only the tables that refer to
        # contacts, as empty as contacts itself.
        cursor.execute("TRUNCATE contacts, events CASCADE")
        rng = np.random.default_rng(SEED)
        drawn = draw_base(rng, contacts)
        for first in range(0, contacts, CHUNK):
            statement = f"COPY contacts ({CONTACT_COLUMNS}) FROM STDIN (FREEZE)"
            with cursor.copy(statement) as copy:
                for row in contact_rows(drawn, first, min(first + CHUNK, contacts)):
                    copy.write_row(row)
        say(f"  copied {contacts:,} contacts ({time.perf_counter() - started:.0f} s)")
        statement = f"COPY events ({EVENT_COLUMNS}) FROM STDIN ({CSV}, FREEZE)"
        # A writer thread sends one block while the next is drawn.
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for first in range(0, events, CHUNK):
                n = min(CHUNK, events - first)
                block = draw_events(rng, n, first + 1, drawn.weights, drawn.quiet_from, WINDOW)
                copy.write(_csv(_event_table(block)))
                if (first + n) % (10 * CHUNK) == 0 or first + n == events:
                    elapsed = time.perf_counter() - started
                    say(f"  copying {first + n:,} events ({elapsed:.0f} s)")
        connection.commit()
        copied = time.perf_counter() - started
        say(f"  committed ({copied:.0f} s)")
        builds: dict[str, float] = {}
        connection.autocommit = True
        for name, _, build in keys:
            began = time.perf_counter()
            cursor.execute(build)
            builds[name] = time.perf_counter() - began
            say(f"  built {name} in {builds[name]:.0f} s")
        for table in ("contacts", "events"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                f" WHERE pg_get_serial_sequence('{table}', 'id') IS NOT NULL"
            )
        began = time.perf_counter()
        cursor.execute("VACUUM ANALYZE")
        analyzed = time.perf_counter() - began
    return {
        "copy_s": copied,
        "index_s": sum(builds.values()),
        "indexes": builds,
        "analyze_s": analyzed,
        "rows_per_s": (contacts + events) / copied,
    }


def add_events(url: str, n: int) -> None:
    """The next day's ``n`` events, copied into the indexed table."""
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT max(id) + 1, (SELECT count(*) FROM contacts) FROM events")
        first, contacts = cursor.fetchone() or (1, 0)
        copy_events(cursor, next_day_events(first, contacts, n))


def sizes(url: str) -> dict[str, int]:
    """Bytes on disk: the database, the events table alone and with its indexes."""
    with psycopg.connect(libpq_url(url)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_database_size(current_database()), pg_relation_size('events'), "
            "pg_total_relation_size('events')"
        )
        database, events, with_indexes = cursor.fetchone() or (0, 0, 0)
    return {"database": database, "events": events, "events_indexed": with_indexes}
