"""``winback score --engine spark``: the facts computed by Spark over the Parquet export.

For a base past one machine, the per-contact facts (the one step of scoring that reads
every event) run on a Spark cluster over the event history exported by
:mod:`winback.scoring.history_export`; everything after them (the RFM breakpoints, the
derived rows, the writes, the stage history and audit) runs unchanged in the
operational store, from the facts Spark returns.

- **One definition of the query.** Spark runs the same facts select as the embedded
  engine (:func:`winback.scoring.facts.facts_select`), compiled for Spark SQL by a
  small SQLAlchemy dialect (:class:`SparkDialect`): the generic compiler with backtick
  identifiers, native booleans, no ``OFFSET 0`` and Spark's spelling of
  :class:`~winback.scoring.sql_functions.local_day`. The export holds the machine-open flag
  resolved, so the select reads it (``machine_resolved``) instead of looking up
  deliveries, which Spark plans as a nested loop.
- **Always a full run.** The export is a snapshot; the run's event watermark is the
  export's highest event id (its ``_winback.json``), so the next embedded incremental
  run takes the events added since from there.
- ``[engine] master`` is handed to Spark as is (``local[*]``, ``spark://host:7077``,
  ``yarn``...); on a cluster, ``events_path`` must be a path every executor reads (an
  object store). See ``docs/howto/spark.md``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from shutil import which
from tempfile import TemporaryDirectory
from typing import Any

import pyarrow as pa
from sqlalchemy import Connection, Select
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import IdentifierPreparer, SQLCompiler

from winback.errors import WinbackError
from winback.scoring.facts import facts_select, insert_facts
from winback.scoring.history_export import (
    PARTITION,
    SCHEMA,
    ExportError,
    events_location,
    read_manifest,
)
from winback.scoring.run import ScoreResult, ScoreRun, score
from winback.scoring.sql_functions import local_day
from winback.workspace import Workspace

#: The Spark schema of the export, so an empty month or a new column never changes the
#: types Spark infers.
_SPARK_TYPES = {
    pa.int64(): "BIGINT",
    pa.string(): "STRING",
    pa.float64(): "DOUBLE",
    pa.bool_(): "BOOLEAN",
    pa.timestamp("us", tz="UTC"): "TIMESTAMP",
}
EVENTS_DDL = ", ".join(
    [*(f"`{field.name}` {_SPARK_TYPES[field.type]}" for field in SCHEMA), f"`{PARTITION}` STRING"]
)


class SparkUnavailable(WinbackError):
    """pyspark or Java is missing, or Spark did not start."""

    exit_code = 2


class _SparkIdentifiers(IdentifierPreparer):
    def __init__(
        self,
        dialect: Any,
        initial_quote: str = "`",
        final_quote: str | None = None,
        escape_quote: str = "`",
        quote_case_sensitive_collations: bool = True,
        omit_schema: bool = False,
    ) -> None:
        super().__init__(
            dialect,
            initial_quote,
            final_quote,
            escape_quote,
            quote_case_sensitive_collations,
            omit_schema,
        )


class _SparkCompiler(SQLCompiler):
    def limit_clause(self, select: Any, **kw: Any) -> str:
        # ``OFFSET 0`` keeps a subquery a subquery in SQLite; Spark needs no such hint.
        text = ""
        if select._limit_clause is not None:
            text += " LIMIT " + self.process(select._limit_clause, **kw)
        if select._offset_clause is not None and select._offset != 0:
            text += " OFFSET " + self.process(select._offset_clause, **kw)
        return text

    def render_literal_value(self, value: Any, type_: Any) -> str:
        if isinstance(value, str):
            # Spark's string literals take backslash escapes.
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return str(super().render_literal_value(value, type_))


class SparkDialect(DefaultDialect):
    """Spark SQL, for compiling SQLAlchemy selects (never for connecting)."""

    name = "spark"
    statement_compiler = _SparkCompiler
    preparer = _SparkIdentifiers
    supports_native_boolean = True


@compiles(local_day, "spark")
def _local_day_spark(element: local_day, compiler: Any, **kw: Any) -> str:
    # The session runs in UTC, so a TIMESTAMP shown in the zone is its local wall time.
    column = compiler.process(next(iter(element.clauses)), **kw)
    zone = compiler.render_literal_value(element.timezone, None)
    return f"unix_date(to_date(from_utc_timestamp({column}, {zone})))"


def spark_sql(query: Select[Any]) -> str:
    """``query`` as Spark SQL text, its parameters written in."""
    return str(query.compile(dialect=SparkDialect(), compile_kwargs={"literal_binds": True}))


@contextmanager
def spark_session(master: str) -> Iterator[Any]:
    """A Spark session on ``master``, stopped at the end; or the session already running
    in this process (a Databricks notebook or job, ``spark-submit``), left running.
    :class:`SparkUnavailable` without pyspark or Java."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'winback[spark]' (and Java 17+)"
        ) from None
    running = SparkSession.getActiveSession()
    if running is not None:
        # Session settings, which a running session takes: the facts are in UTC.
        running.conf.set("spark.sql.session.timeZone", "UTC")
        yield running
        return
    if not os.environ.get("JAVA_HOME") and which("java") is None:
        raise SparkUnavailable(
            "the Spark engine needs Java 17 or newer (apt-get install default-jre-headless), "
            "or JAVA_HOME set"
        )
    builder = (
        SparkSession.builder.master(master)
        .appName("winback score")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if master.startswith("local"):
        # One machine: the driver listens on loopback only, and a few shuffle partitions
        # (Spark's 200 cost more to schedule than a small base takes to aggregate).
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (
            builder.config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", str(2 * (os.cpu_count() or 1)))
        )
    try:
        with warnings.catch_warnings():
            # pyspark 4.3 warns that it does not support pandas 3 yet: winback hands it
            # no pandas (the facts come back through Arrow).
            warnings.filterwarnings("ignore", "PySpark does not yet", FutureWarning)
            session = builder.getOrCreate()
    except Exception as exc:  # Py4J and Spark raise many kinds: each is "did not start"
        raise SparkUnavailable(f"Spark did not start on {master}: {exc}") from None
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def month_files(location: str) -> str:
    """Spark's path of the history's files: only ``month=*/*.parquet`` right under the
    folder, what the DuckDB engine reads too (another Parquet file there, a backup say,
    is not the history), the folder's own glob characters escaped."""
    folder = re.sub(r"([\\{}\[\]*?])", r"\\\1", location.rstrip("/"))
    return f"{folder}/{PARTITION}=*/*.parquet"


def spark_facts(location: str, master: str, scratch: Path) -> Any:
    """The facts filler of :func:`winback.scoring.score` that runs the facts select on
    Spark over the export at ``location``; ``scratch``: a folder for the facts on their
    way into SQLite (:func:`winback.scoring.facts.insert_facts`)."""

    def write(connection: Connection, run: ScoreRun) -> int:
        manifest = read_manifest(location)
        if manifest.machine_open_seconds != run.machine_open_seconds:
            raise ExportError(
                f"{location}: its machine opens were resolved with "
                f"scoring.machine_open_seconds = {manifest.machine_open_seconds}, the "
                f"workspace says {run.machine_open_seconds}: run `winback events export` again"
            )
        query = facts_select(run, machine_resolved=True)
        with spark_session(master) as session:
            history = session.read.schema(EVENTS_DDL).option("basePath", location)
            history.parquet(month_files(location)).createOrReplaceTempView("events")
            facts = session.sql(spark_sql(query)).toArrow()
        insert_facts(connection, facts, scratch)
        return manifest.high_water

    return write


def score_workspace(
    workspace: Workspace,
    *,
    now: datetime,
    full: bool = False,
    engine: str | None = None,
    waiting: Callable[[str], None] | None = None,
) -> ScoreResult:
    """``winback score``: on the ``engine`` named (``embedded``, ``duckdb`` or ``spark``),
    else the one of ``[engine] kind``. Spark scoring is always a full run; DuckDB computes
    the facts of the full runs, the store those of the incremental ones; ``waiting``
    hears when another command holds the history DuckDB reads."""
    config = workspace.config
    kind = engine or config.engine.kind
    if kind == "embedded":
        return score(workspace, now=now, full=full)
    if kind not in ("duckdb", "spark"):
        raise ValueError(f"engine {kind!r}: embedded, duckdb or spark")
    with TemporaryDirectory(prefix="winback-facts-") as scratch:
        if kind == "spark":
            location = events_location(workspace)
            facts = spark_facts(location, config.engine.master, Path(scratch))
            return score(workspace, now=now, full=True, facts_filler=facts)
        from winback.scoring.duck import duck_facts, duck_rows
        from winback.scoring.duck_health import keep_duck_health

        if workspace.engine.dialect.name == "sqlite":
            rows = duck_rows(workspace, Path(scratch), waiting)
            result = score(workspace, now=now, full=full, rows_filler=rows, health_later=True)
            if result.mode == "incremental":
                keep_duck_health(workspace, now, Path(scratch), waiting)
            return result
        facts = duck_facts(workspace, Path(scratch), waiting)
        return score(workspace, now=now, full=full, facts_filler=facts)
