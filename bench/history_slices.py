"""What the readers of events would pay if the events they ask for lived only in the
columnar history: the slices they read (:func:`winback.store.history.events_slice`), the
same select run on the store through its indexes and on the history's Parquet months
through DuckDB (seen as the ``events`` table, as the DuckDB engine sees it), side by side
(issue 17's decision on where imported events live).

    python bench/history_slices.py --workspace bench/out/score-1000000-20000000 \\
        --history /tmp/history        # written first by `winback events export --parquet`

The workspace is only read. Each slice is read three times; the best time is printed,
with the rows it found (both sides must agree) and the load average.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import Select, func, select

from winback.clock import from_db
from winback.scoring.duck import duck_rows_of, duck_session, history_view
from winback.scoring.history_export import Target, open_destination
from winback.store.history import events_slice
from winback.store.schema import contacts, events
from winback.workspace import Workspace

#: How many contacts a tick-like slice names.
CONTACTS = 10_000
RUNS = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--history", type=Path, required=True)
    args = parser.parse_args()
    workspace = Workspace.open(args.workspace)
    files = Target(*open_destination(str(args.history.resolve())), 0).paths()
    table = Table("slice", "SQLite s", "history (DuckDB) s", "rows", "load")
    with workspace.engine.connect() as connection, duck_session() as duck:
        history_view(duck, files, "events")
        in_history = duck_rows_of(duck)
        last = connection.execute(select(func.max(contacts.c.id))).scalar_one()
        newest = from_db(connection.execute(select(func.max(events.c.occurred_at))).scalar_one())
        rng = random.Random(7)
        slices: list[tuple[str, dict[str, Any]]] = [
            (
                "one contact, all its events (contact show, GDPR export)",
                {"contact_id": rng.randrange(1, last + 1)},
            ),
            (
                f"{CONTACTS:,} contacts, the last 30 days (tick reactions)",
                {
                    "contacts": rng.sample(range(1, last + 1), CONTACTS),
                    "since": newest - timedelta(days=30),
                },
            ),
        ]
        for name, bounds in slices:
            in_store = select(events_slice(connection, **bounds))
            store_s, found = _best(partial(_count, connection.execute, in_store))
            from_history = select(events_slice(None, **bounds))
            history_s, found_too = _best(partial(_count, in_history, from_history))
            rows = f"{found:,}" if found == found_too else f"{found:,} ≠ {found_too:,}"
            load = f"{os.getloadavg()[0]:.1f}"
            table.add_row(name, f"{store_s:.3f}", f"{history_s:.3f}", rows, load)
    workspace.close()
    Console().print(table)


def _count(run: Callable[[Select[Any]], Iterable[Any]], query: Select[Any]) -> int:
    """How many rows ``run`` gives for ``query``."""
    return len(list(run(query)))


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
