"""Attacks on the health an incremental DuckDB score keeps after its commit (SQLite):
it must equal the health the store computes, whatever happened to the history since
the full score wrote it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from tests.builders import add_contact, add_event
from tests.spark.conftest import NOW
from tests.spark.test_duck import (
    _duck_scored,
    _kept_is_the_stores,
    _next_day_score,
    _quiet,
)
from tests.spark.test_spark_score import _score, _set
from winback.cli import app
from winback.store.schema import events
from winback.workspace import Workspace


def test_a_restored_store_reusing_event_ids_is_not_priced_from_the_history(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _duck_scored(cli, ws)
    quiet = _quiet(ws)
    with ws.engine.begin() as connection:
        for hours in (1, 2, 3):
            add_event(connection, quiet, "sent", NOW - timedelta(hours=hours), channel="email")
    _score(cli, ws, "--full")
    # The database is restored from a copy taken before the three messages: SQLite
    # gives their ids to the next events, sent by SMS the next morning.
    with ws.engine.begin() as connection:
        newest = connection.execute(select(func.max(events.c.id))).scalar_one()
        connection.execute(events.delete().where(events.c.id > newest - 3))
        for hours in (1, 2, 3):
            add_event(connection, quiet, "sent", NOW + timedelta(hours=hours), channel="sms")
        assert connection.execute(select(func.max(events.c.id))).scalar_one() == newest

    result = _next_day_score(cli, ws)

    assert result.exit_code == 0, result.output
    _kept_is_the_stores(ws)


def test_a_history_exported_since_a_day_does_not_lose_a_backfilled_message(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _duck_scored(cli, ws)
    quiet = _quiet(ws)
    # A message of last month imported late, then an export of this month only into
    # the workspace's history: its manifest reaches the newest event, last month's
    # files lack the message.
    with ws.engine.begin() as connection:
        add_event(connection, quiet, "sent", NOW - timedelta(days=10), channel="email")
    since = f"{NOW - timedelta(days=3):%Y-%m-%d}"
    exported = cli.invoke(app, ["events", "export", "-w", str(ws.path), "--since", since])
    assert exported.exit_code == 0, exported.output

    result = _next_day_score(cli, ws)

    assert result.exit_code == 0, result.output
    _kept_is_the_stores(ws)


def test_a_damaged_history_file_does_not_fail_a_committed_score(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _duck_scored(cli, ws)
    month = sorted((ws.path / "history").glob("month=*"))[-1]
    for file in month.glob("*.parquet"):
        file.write_bytes(b"not parquet")
    with ws.engine.begin() as connection:
        add_event(connection, _quiet(ws), "sent", NOW + timedelta(hours=2), channel="email")

    result = _next_day_score(cli, ws)

    # The score's rows are committed before the health is taken: a history DuckDB
    # cannot read leaves the store to compute it, as a missing one does.
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mode"] == "incremental"
    _kept_is_the_stores(ws)


def test_a_history_written_from_another_database_is_not_read(
    cli: CliRunner, demo_workspace: Workspace, tmp_path: Path
) -> None:
    ws = demo_workspace
    shared = tmp_path / "shared"
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')
    _set(ws, 'events_path = "history"', f'events_path = "{shared}"')
    _score(cli, ws, "--full")
    quiet = _quiet(ws)
    # Another workspace shares the folder: its compact writes its own events there,
    # messages to a contact of the same id among them.
    other = Workspace.init(tmp_path / "other", "ecommerce")
    with other.engine.begin() as connection:
        for number in range(quiet):
            someone = add_contact(
                connection, email=f"o{number}@example.com", created_at=NOW - timedelta(days=9)
            )
        assert someone == quiet
        for hours in range(1, 6):
            add_event(connection, quiet, "sent", NOW - timedelta(hours=hours), channel="sms")
    other.close()
    config = tmp_path / "other" / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'events_path = "history"', f'events_path = "{shared}"'
        ),
        encoding="utf-8",
    )
    result = cli.invoke(app, ["events", "compact", "-w", str(tmp_path / "other"), "--json"])
    assert result.exit_code == 0, result.output

    score = _next_day_score(cli, ws)

    assert score.exit_code == 0, score.output
    _kept_is_the_stores(ws)
