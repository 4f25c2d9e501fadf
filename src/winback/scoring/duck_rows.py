"""A full score's derived rows computed by DuckDB, and only the changed ones sent back
to SQLite.

With the facts computed in DuckDB (:mod:`winback.scoring.duck`), sending a million of
them into SQLite and deriving the rows there cost more than computing them. So the
contacts and the stored rows come to DuckDB instead (read through ADBC, as committed:
the run has written nothing to them yet), DuckDB runs the RFM breakpoints and the
derived rows with the same selects as the store would
(:func:`winback.scoring.rfm.breakpoints_from`,
:func:`winback.scoring.derive.derive_select`), and compares each row with the stored
one. Only the rows that differ, but for their clocks (as an incremental run does,
:data:`winback.scoring.derive.KEPT_COLUMNS`; sums of amounts within a relative 1e-9,
since DuckDB adds them in no fixed order), and the stored rows of contacts now
erased go back; :func:`winback.scoring.derive.write_rows` writes them as it writes an
incremental run's. A row not rewritten keeps its ``scored_at``, and its clocks are as
of that time, as after an incremental run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Select,
    Table,
    column,
    false,
    insert,
    select,
    table,
    union_all,
)
from sqlalchemy.sql import visitors

from winback.models.apply import model_estimates
from winback.scoring.derive import KEPT_COLUMNS, derive_select, score_new
from winback.scoring.duck import duck_rows_of, duck_sql, load_table
from winback.scoring.duck_health import health_reads
from winback.scoring.facts import score_facts, score_touch
from winback.scoring.rfm import Breakpoints, breakpoints_from
from winback.scoring.stages import from_day_number
from winback.store.arrow import CommittedRead, Wanted, attach_arrow, stored
from winback.store.schema import contact_scores, contacts

if TYPE_CHECKING:
    from winback.scoring.run import ScoreRun
    from winback.workspace import Workspace


def read_store(workspace: Workspace, run: ScoreRun, scratch: Path) -> CommittedRead:
    """Start reading what :func:`changed_rows` and the health's figures need of the
    store: the contacts' columns they read, the stored rows' compared columns, the
    stage changes the erosion counts (:func:`~winback.scoring.duck_health.health_reads`)."""
    derived = derive_select(run, Breakpoints(0, (), (), ()), rewrite_all=True)
    wanted = health_reads(run.timezone, run.now)
    contact_columns = _read_columns(derived, contacts) | set(wanted["contacts"].names)
    wanted["contacts"] = Wanted(contacts, sorted(contact_columns))
    wanted["contact_scores"] = Wanted(contact_scores, ["contact_id", *KEPT_COLUMNS])
    return CommittedRead(Path(workspace.engine.url.database or ""), scratch, wanted)


def changed_rows(
    duck: Any, connection: Connection, store: CommittedRead, run: ScoreRun, scratch: Path
) -> Breakpoints:
    """With ``score_facts`` in the DuckDB session ``duck`` and the store read
    (:func:`read_store`): fill the run's ``score_new`` with the rows that changed and
    ``score_touch`` with them and the stored rows to delete; returns the breakpoints of
    the day. The session's ``contact_scores`` and ``stage_history`` are then the
    run's."""
    for name, data in store.tables().items():
        load_table(duck, store.sources[name], data)
    import pyarrow as pa

    # The model's estimates are in a temporary table of the run's connection.
    estimates = connection.execute(select(model_estimates)).all()
    names = [column.name for column in model_estimates.columns]
    by_column = [list(values) for values in zip(*estimates, strict=True)] or [[] for _ in names]
    load_table(duck, model_estimates, pa.table(dict(zip(names, by_column, strict=True))))
    points = breakpoints_from(duck_rows_of(duck), score_facts, run.timezone)
    duck.execute(
        "CREATE TABLE score_rows AS " + duck_sql(derive_select(run, points, rewrite_all=True))
    )
    same = " AND ".join(_same(name) for name in KEPT_COLUMNS)
    changed = duck.sql(
        "SELECT n.* FROM score_rows n LEFT JOIN contact_scores o USING (contact_id) "
        f"WHERE o.contact_id IS NULL OR NOT ({same})"
    ).to_arrow_table()
    gone = duck.sql(
        "SELECT contact_id FROM contact_scores ANTI JOIN score_rows USING (contact_id)"
    ).to_arrow_table()
    # From here on the session's stored rows and stage changes are the run's, for the
    # health's figures.
    duck.execute("DROP TABLE contact_scores")
    duck.execute("ALTER TABLE score_rows RENAME TO contact_scores")
    duck.execute(
        "INSERT INTO stage_history SELECT contact_id, stage, ? FROM contact_scores "
        "WHERE old_stage IS NULL OR old_stage <> stage",
        [from_day_number(run.now_day)],
    )
    schema = attach_arrow(
        connection,
        scratch,
        "rows",
        {"rows": stored(changed, score_new.columns, sqlite=True), "gone": gone},
    )
    names = changed.column_names
    connection.execute(
        insert(score_new).from_select(
            names, select(table("rows", *(column(name) for name in names), schema=schema))
        )
    )
    written = table("rows", column("contact_id"), column("old_stage"), schema=schema)
    erased = table("gone", column("contact_id"), schema=schema)
    connection.execute(
        insert(score_touch).from_select(
            ["contact_id", "unscored"],
            union_all(
                select(written.c.contact_id, written.c.old_stage.is_(None)),
                select(erased.c.contact_id, false()),
            ),
        )
    )
    return points


def _same(name: str) -> str:
    """SQL: the new row's column ``name`` (``n``) holds what the stored one (``o``) does.
    Sums of amounts come out of a parallel engine in no fixed order, so they differ in
    their last bits from run to run: those within a relative 1e-9 are the same."""
    if not isinstance(contact_scores.c[name].type, Float):
        return f"n.{name} IS NOT DISTINCT FROM o.{name}"
    # Null on either side is no closeness: a value beside a null is a change.
    close = f"abs(n.{name} - o.{name}) <= 1e-9 * greatest(abs(n.{name}), abs(o.{name}))"
    return f"(n.{name} IS NOT DISTINCT FROM o.{name} OR coalesce({close}, false))"


def _read_columns(query: Select[Any], source: Table) -> set[str]:
    """The columns of ``source`` that ``query`` reads."""
    found: set[str] = set()

    def seen(element: Any) -> None:
        if isinstance(element, Column) and element.table is source:
            found.add(element.name)

    visitors.traverse(query, {}, {"column": seen})
    return found
