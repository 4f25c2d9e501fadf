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

The history is seen as the store's ``events`` table: its times, UTC instants, as the
store's naive UTC times so the zone arithmetic of
:class:`~winback.scoring.sql_functions.local_day` means what it means on PostgreSQL,
and the personal columns it does not hold null, so any select over that table runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    Select,
    Table,
)
from sqlalchemy.dialects import registry

from winback.errors import WinbackError
from winback.reports.health import scored_figures
from winback.scoring.facts import FillFacts, facts_select, insert_facts
from winback.scoring.history_export import SCHEMA
from winback.scoring.history_update import history_lock, history_target, update_history
from winback.scoring.run import Derived, DeriveRows, ScoreRun
from winback.store.schema import events
from winback.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa

_DUCK_TYPES = (
    (DateTime, "TIMESTAMP"),
    (Date, "DATE"),
    (Boolean, "BOOLEAN"),
    (Float, "DOUBLE"),
    (Integer, "BIGINT"),
    (LargeBinary, "BLOB"),
)


class DuckUnavailable(WinbackError):
    """The DuckDB engine cannot read the history where it is."""

    exit_code = 2


def duck_sql(query: Select[Any]) -> str:
    """``query`` as SQL that DuckDB runs, its parameters written in."""
    return str(
        query.compile(dialect=registry.load("postgresql")(), compile_kwargs={"literal_binds": True})
    )


def duck_session() -> Any:
    """A DuckDB session in memory for our queries: in UTC, order not kept (it lets
    DuckDB run in parallel what needs none), and without DuckDB's own progress bar,
    which it draws on the terminal for a query of some seconds."""
    import duckdb

    session = duckdb.connect(config={"preserve_insertion_order": False})
    session.execute("SET TimeZone = 'UTC'")
    session.execute("SET enable_progress_bar = false")
    return session


def duck_type(kind: Any) -> str:
    """DuckDB's name of the type of a column of ours (a SQLAlchemy type)."""
    for ours, name in _DUCK_TYPES:
        if isinstance(kind, ours):
            return name
    return "VARCHAR"


def as_events(held: list[str]) -> str:
    """The history's columns (``held``) projected as the store's ``events`` table, so
    any select over that table runs on it: its instants as naive UTC times (the session
    is in UTC), the columns it does not hold (the personal ones) null."""
    columns = []
    for column in events.columns:
        if column.name == "occurred_at":
            columns.append("CAST(occurred_at AS TIMESTAMP) AS occurred_at")
        elif column.name in held:
            columns.append(column.name)
        else:
            columns.append(f"CAST(NULL AS {duck_type(column.type)}) AS {column.name}")
    return ", ".join(columns)


def duck_rows_of(duck: Any) -> Callable[[Select[Any]], list[Any]]:
    """A query runner over the DuckDB session ``duck``: one of our selects in, its rows
    out (what :func:`~winback.scoring.rfm.breakpoints_from` and
    :func:`~winback.reports.health.scored_figures` take)."""
    return lambda query: list(duck.sql(duck_sql(query)).fetchall())


def history_view(duck: Any, files: list[str], name: str) -> None:
    """The history's ``files`` as the view ``name`` of the store's ``events`` columns
    (:func:`as_events`). The files by name, not a pattern: a folder name with ``*`` or
    ``[`` matches nothing else, one named ``type=x`` adds no column. No file: an empty
    table of the history's own columns."""
    history = (
        duck.read_parquet(files, hive_partitioning=False)
        if files
        else duck.from_arrow(SCHEMA.empty_table())
    )
    history.project(as_events(history.columns)).create_view(name)


def load_table(duck: Any, source: Table, data: pa.Table, *, name: str | None = None) -> None:
    """``data`` (columns of ``source``, read from SQLite) as a DuckDB table, named like
    ``source`` unless ``name`` is given, each column cast to its type: SQLite hands
    times and dates over as text, and times go through ``TIMESTAMPTZ`` (the session is
    in UTC) so one stored with its UTC offset is that instant, as SQLite reads it."""
    columns = []
    for column in data.column_names:
        kind = duck_type(source.c[column].type)
        value = f"CAST({column} AS TIMESTAMPTZ)" if kind == "TIMESTAMP" else column
        columns.append(f"CAST({value} AS {kind}) AS {column}")
    duck.register("winback_arrow", data)
    duck.execute(
        f"CREATE TABLE {name or source.name} AS SELECT {', '.join(columns)} FROM winback_arrow"
    )
    duck.unregister("winback_arrow")


def duck_facts(
    workspace: Workspace, scratch: Path, waiting: Callable[[str], None] | None = None
) -> FillFacts:
    """The facts filler of :func:`winback.scoring.score` that runs the facts select in
    DuckDB over the workspace's history, brought up to date first; ``scratch``: a
    folder for the facts on their way into the store, removed by the caller after the
    run. The history is held from its update to the end of the read, so no other
    command rewrites it under DuckDB."""

    def write(connection: Connection, run: ScoreRun) -> int:
        with _history_facts(workspace, connection, run, waiting) as (duck, high_water):
            table = duck.sql("SELECT * FROM score_facts").to_arrow_table()
        insert_facts(connection, table, scratch)
        return high_water

    return write


def duck_rows(
    workspace: Workspace, scratch: Path, waiting: Callable[[str], None] | None = None
) -> DeriveRows:
    """The rows filler of :func:`winback.scoring.score` (SQLite): the facts, the RFM
    breakpoints and every contact's derived row computed in DuckDB
    (:mod:`winback.scoring.duck_rows`), and only the rows that changed sent back; the
    parts of the base's health that read the new rows are computed there as well."""
    from winback.scoring.duck_rows import changed_rows, read_store

    def derive(connection: Connection, run: ScoreRun) -> Derived:
        # The store is read by another process while DuckDB computes the facts.
        with (
            read_store(workspace, run, scratch) as store,
            _history_facts(workspace, connection, run, waiting) as (duck, high_water),
        ):
            points = changed_rows(duck, connection, store, run, scratch)
            health = scored_figures(duck_rows_of(duck), workspace.config, run.now)
        return Derived(high_water, points, health)

    return derive


@contextmanager
def _history_facts(
    workspace: Workspace,
    connection: Connection,
    run: ScoreRun,
    waiting: Callable[[str], None] | None,
) -> Iterator[tuple[Any, int]]:
    """A DuckDB session holding the facts of every contact (table ``score_facts``),
    computed over the workspace's history brought up to date first, and the highest
    event id they saw."""
    import duckdb

    target = history_target(workspace)
    with history_lock(target, waiting):
        update = update_history(workspace, connection, locked=True)
        with duck_session() as duck:
            history_view(duck, target.paths(), "events")
            try:
                facts = duck_sql(facts_select(run, machine_resolved=True))
                duck.execute(f"CREATE TABLE score_facts AS {facts}")
            except duckdb.Error as exc:
                raise DuckUnavailable(f"{target.base}: DuckDB cannot read it ({exc})") from None
            try:
                yield duck, update.high_water
            except duckdb.Error as exc:
                database = workspace.engine.url.database
                raise DuckUnavailable(
                    f"{database}: DuckDB cannot score the contacts read from it ({exc}); "
                    "`winback score --engine embedded` scores them in the database"
                ) from None
