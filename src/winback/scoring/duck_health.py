"""The base's health after an incremental score on the DuckDB engine (SQLite), computed
by DuckDB after the score's commit.

An incremental score takes the health on the first run of a day. In SQLite its figures
read every contact and score row and scan the events for the messages of the cost
period, several times the score's own work on a large base. Here a reader process
brings the committed contacts, score rows and stage changes the figures read
(:data:`~winback.reports.health.CONTACT_COLUMNS`,
:data:`~winback.reports.health.SCORE_COLUMNS`,
:func:`~winback.reports.health.erosion_changes`) and the events landed since the
history's high water; DuckDB runs the same selects
(:func:`~winback.reports.health.scored_figures`) over them and the history, and the
figures are kept in a short transaction of their own. Without a history it can trust
(none yet, or one the next full score writes again: see
:func:`~winback.scoring.history_update.stale_reason`), or when DuckDB cannot read it,
the store computes them, as the embedded engine does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from winback.reports.aggregates import health_due, keep_health
from winback.reports.health import (
    CONTACT_COLUMNS,
    SCORE_COLUMNS,
    erosion_changes,
    health_figures,
    scored_figures,
)
from winback.scoring.duck import as_events, duck_rows_of, duck_session, history_view, load_table
from winback.scoring.history_export import SCHEMA, ExportError, read_manifest
from winback.scoring.history_update import history_lock, history_target, stale_reason
from winback.store.arrow import CommittedRead, Wanted
from winback.store.history import high_water as stored_high_water
from winback.store.schema import contact_scores, contacts, events, stage_history
from winback.workspace import Workspace


def keep_duck_health(
    workspace: Workspace,
    now: datetime,
    scratch: Path,
    waiting: Callable[[str], None] | None = None,
) -> None:
    """Keep the base's health as of ``now`` (aware) when it is due (the first score of
    the day), computed by DuckDB over the history and what the store holds beyond it."""
    config = workspace.config
    with workspace.engine.connect() as connection:
        if not health_due(connection, config, now):
            return
    target = history_target(workspace)
    scored = None
    with history_lock(target, waiting):
        try:
            manifest = read_manifest(target.base)
            with workspace.engine.connect() as connection:
                stale = stale_reason(connection, manifest, target, stored_high_water(connection))
        except ExportError:
            manifest, stale = None, "no history"
        if manifest is not None and not stale:
            scored = _figures(workspace, now, scratch, target.paths(), manifest.high_water)
    # Without a history DuckDB can trust (the next full score writes it again), the
    # store computes the figures: the score is committed, its health must follow.
    with workspace.engine.begin() as connection:
        keep_health(connection, now, health_figures(connection, config, now, scored=scored))


def health_reads(timezone: str, now: datetime) -> dict[str, Wanted]:
    """What the health's figures read of the store (:func:`scored_figures`), for a
    reader process (:class:`~winback.store.arrow.CommittedRead`)."""
    return {
        "contacts": Wanted(contacts, list(CONTACT_COLUMNS)),
        "contact_scores": Wanted(contact_scores, list(SCORE_COLUMNS)),
        "stage_history": Wanted(
            stage_history, ["contact_id", "to_stage", "changed_on"], erosion_changes(timezone, now)
        ),
    }


def _figures(
    workspace: Workspace, now: datetime, scratch: Path, files: list[str], high_water: int
) -> dict[str, Any] | None:
    """The health's figures by DuckDB over the history's ``files`` and the store's
    events above ``high_water``; None when DuckDB cannot read them."""
    import duckdb

    wanted = health_reads(workspace.config.workspace.timezone, now)
    wanted["landed"] = Wanted(events, list(SCHEMA.names), events.c.id > high_water)
    database = Path(workspace.engine.url.database or "")
    with CommittedRead(database, scratch, wanted) as store, duck_session() as duck:
        try:
            for name, data in store.tables().items():
                load_table(duck, store.sources[name], data, name=name)
            history_view(duck, files, "moved")
            landed = duck.table("landed")
            landed.project(as_events(landed.columns)).create_view("stored")
            duck.execute("CREATE VIEW events AS SELECT * FROM moved UNION ALL SELECT * FROM stored")
            return scored_figures(duck_rows_of(duck), workspace.config, now)
        except duckdb.Error:
            return None
