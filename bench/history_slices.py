"""What the readers of events would pay if the events they ask for lived only in the
columnar history: the bounded slices they read (``store.history.events_slice``), from
SQLite through its indexes and from the history's Parquet months through DuckDB, side by
side (issue 17's decision on where imported events live).

    python bench/history_slices.py --workspace bench/out/score-1000000-20000000 \\
        --history /tmp/history        # written first by `winback events export --parquet`

The workspace is only read. Each slice is read three times; the best time is printed,
with the rows it found (both sides must agree) and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table

#: How many contacts a tick-like slice names.
CONTACTS = 10_000
RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--history", type=Path, required=True)
    args = parser.parse_args()
    store = sqlite3.connect(f"file:{(args.workspace / 'winback.db').resolve()}?mode=ro", uri=True)
    duck = duckdb.connect()
    months = args.history.resolve() / "month=*" / "*.parquet"
    duck.execute(f"CREATE VIEW history AS SELECT * FROM read_parquet('{months}')")
    contacts = int(store.execute("SELECT max(id) FROM contacts").fetchone()[0])
    newest = datetime.fromisoformat(
        str(store.execute("SELECT max(occurred_at) FROM events").fetchone()[0])[:19]
    )
    rng = random.Random(7)
    one = rng.randrange(1, contacts + 1)
    many = rng.sample(range(1, contacts + 1), CONTACTS)
    since = (newest - timedelta(days=30)).isoformat(sep=" ")
    store.execute("CREATE TEMP TABLE wanted (id INTEGER PRIMARY KEY)")
    store.executemany("INSERT INTO wanted VALUES (?)", [(cid,) for cid in many])
    duck.register("wanted", pa.table({"id": many}))
    slices: list[tuple[str, str, str]] = [
        (
            "one contact, all its events (contact show, GDPR export)",
            f"SELECT * FROM events WHERE contact_id = {one}",
            f"SELECT * FROM history WHERE contact_id = {one}",
        ),
        (
            f"{CONTACTS:,} contacts, the last 30 days (tick reactions)",
            "SELECT e.* FROM events e JOIN wanted w ON e.contact_id = w.id "
            f"WHERE e.occurred_at >= '{since}'",
            "SELECT h.* FROM history h JOIN wanted w ON h.contact_id = w.id "
            f"WHERE h.occurred_at >= TIMESTAMP '{since}'",
        ),
    ]
    table = Table("slice", "SQLite s", "history (DuckDB) s", "rows", "load")
    for name, in_store, in_history in slices:
        store_s, found = _best(partial(_store_rows, store, in_store))
        history_s, found_too = _best(partial(_history_rows, duck, in_history))
        rows = f"{found:,}" if found == found_too else f"{found:,} ≠ {found_too:,}"
        table.add_row(name, f"{store_s:.3f}", f"{history_s:.3f}", rows, f"{os.getloadavg()[0]:.1f}")
    Console().print(table)


def _store_rows(store: sqlite3.Connection, query: str) -> int:
    return len(store.execute(query).fetchall())


def _history_rows(duck: duckdb.DuckDBPyConnection, query: str) -> int:
    return int(duck.sql(query).to_arrow_table().num_rows)


def _best(read: Callable[[], int]) -> tuple[float, int]:
    """The best of :data:`RUNS` timings of ``read``, and the rows it found."""
    times, rows = [], 0
    for _ in range(RUNS):
        started = time.perf_counter()
        rows = read()
        times.append(time.perf_counter() - started)
    return min(times), rows


if __name__ == "__main__":
    main()
