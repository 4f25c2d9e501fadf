"""``[engine] kind = "duckdb"``: the facts of a full score computed by DuckDB over the
workspace's columnar event history.

A full score reads every event once; SQLite walks them one row at a time, DuckDB scans
the history's Parquet columns in parallel and aggregates them in a fraction of the time
(bench/score.py, ``--engine``). So on this engine a full run first brings the history up
to date with what landed in the store (:func:`winback.scoring.history_update.update_history`,
inside the score's transaction, so the facts and the run's watermark are of one
snapshot), then runs the one facts select
(:func:`winback.scoring.facts.facts_select`, compiled with PostgreSQL's dialect, which
DuckDB reads) over the history, and hands the facts to the run. The incremental runs
stay in the store: they read only the events since the last run, through its indexes.

The history's times are UTC instants; the view turns them into the store's naive UTC
times so the zone arithmetic of :class:`~winback.scoring.sql_functions.local_day`
means what it means on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Select
from sqlalchemy.dialects import registry

from winback.errors import WinbackError
from winback.scoring.facts import FillFacts, facts_select, insert_facts
from winback.scoring.history_export import SCHEMA
from winback.scoring.history_update import history_lock, history_target, update_history
from winback.scoring.run import ScoreRun
from winback.workspace import Workspace

#: The history's instants as the store's naive UTC times (the session is in UTC).
NAIVE_UTC = "* REPLACE (CAST(occurred_at AS TIMESTAMP) AS occurred_at)"


class DuckUnavailable(WinbackError):
    """The DuckDB engine cannot read the history where it is."""

    exit_code = 2


def duck_sql(query: Select[Any]) -> str:
    """``query`` as SQL that DuckDB runs, its parameters written in."""
    return str(
        query.compile(dialect=registry.load("postgresql")(), compile_kwargs={"literal_binds": True})
    )


def duck_facts(
    workspace: Workspace, scratch: Path, waiting: Callable[[str], None] | None = None
) -> FillFacts:
    """The facts filler of :func:`winback.scoring.score` that runs the facts select in
    DuckDB over the workspace's history, brought up to date first; ``scratch``: a
    folder for the facts on their way into SQLite, removed by the caller after the run.
    The history is held from its update to the end of the read, so no other command
    rewrites it under DuckDB."""
    import duckdb

    target = history_target(workspace)

    def write(connection: Connection, run: ScoreRun) -> int:
        with history_lock(target, waiting):
            update = update_history(workspace, connection, locked=True)
            files = [path for month in target.files().values() for path in month]
            with duckdb.connect(config={"preserve_insertion_order": False}) as duck:
                duck.execute("SET TimeZone = 'UTC'")
                # The files by name, not a pattern: a folder name with ``*`` or ``[``
                # matches nothing else, one named ``type=x`` adds no column. No file:
                # an empty table of the history's own columns.
                history = (
                    duck.read_parquet(files, hive_partitioning=False)
                    if files
                    else duck.from_arrow(SCHEMA.empty_table())
                )
                history.project(NAIVE_UTC).create_view("events")
                try:
                    facts = duck.sql(duck_sql(facts_select(run, machine_resolved=True)))
                    table = facts.to_arrow_table()
                except duckdb.Error as exc:
                    raise DuckUnavailable(f"{target.base}: DuckDB cannot read it ({exc})") from None
        insert_facts(connection, table, scratch)
        return update.high_water

    return write
