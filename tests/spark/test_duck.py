"""``[engine] kind = "duckdb"``: the workspace's columnar history kept up to date, and the
full scores DuckDB computes over it equal the embedded engine's, contact by contact."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from tests.builders import add_contact, add_event
from tests.spark.conftest import NOW
from tests.spark.test_spark_score import _score, _scores, _set
from winback.cli import app
from winback.reports.aggregates import health_snapshot
from winback.reports.health import base_health
from winback.scoring.history_update import (
    HistoryUpdate,
    history_lock,
    history_target,
    update_history,
)
from winback.store.schema import contacts, events
from winback.workspace import Workspace

NEXT_DAY = (NOW + timedelta(days=1)).date().isoformat()


def _compact(cli: CliRunner, ws: Workspace) -> dict[str, Any]:
    result = cli.invoke(app, ["events", "compact", "-w", str(ws.path), "--json"])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _history(ws: Workspace, folder: Path | None = None) -> dict[int, dict[str, Any]]:
    """The history's rows by event id: the Parquet files of its month folders."""
    files = sorted(str(f) for f in (folder or ws.path / "history").glob("month=*/*.parquet"))
    table = ds.dataset(files, format="parquet").to_table()
    return {row["id"]: row for row in table.to_pylist()}


def _health(ws: Workspace) -> dict[str, Any]:
    """The base's health kept by the last score."""
    with ws.engine.connect() as connection:
        kept = health_snapshot(connection)
    assert kept is not None
    return kept


def _duck_scored(cli: CliRunner, ws: Workspace) -> None:
    """Switch the workspace to the DuckDB engine and score it whole (the history
    written)."""
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')
    _score(cli, ws, "--full")


def _quiet(ws: Workspace) -> int:
    """A lost contact: the cost prices the messages sent to it."""
    return next(cid for cid, row in _scores(ws).items() if row["stage"] == "lost")


def _next_day_score(cli: CliRunner, ws: Workspace) -> Any:
    """``winback score`` the day after :data:`NOW` (incremental after a full one)."""
    result = cli.invoke(app, ["score", "-w", str(ws.path), "--now", NEXT_DAY, "--json"])
    assert "Traceback" not in result.output
    return result


def _kept_is_the_stores(ws: Workspace) -> dict[str, Any]:
    """The health kept by the last score, of a day after :data:`NOW`, checked equal
    to the one the store computes."""
    kept = _health(ws)
    assert datetime.fromisoformat(kept["now"]) > NOW, "the health of the new day was not kept"
    expected = base_health(ws, now=datetime.fromisoformat(kept["now"]))
    assert kept["cost"] == expected["cost"]
    assert kept == expected
    return kept


def _files(ws: Workspace) -> dict[str, int]:
    found: dict[str, int] = {}
    for file in (ws.path / "history").rglob("*.parquet"):
        found[file.parent.name] = found.get(file.parent.name, 0) + 1
    return found


def _stored(ws: Workspace) -> list[int]:
    with ws.engine.connect() as connection:
        return list(connection.execute(select(events.c.id).order_by(events.c.id)).scalars())


def test_duckdb_scores_equal_the_embedded_engine(cli: CliRunner, demo_workspace: Workspace) -> None:
    ws = demo_workspace
    _score(cli, ws, "--engine", "embedded", "--full")
    # Messages sent lately to quiet contacts, which the health prices.
    quiet = [cid for cid, row in _scores(ws).items() if row["stage"] in ("dormant", "lost")]
    with ws.engine.begin() as connection:
        for number, cid in enumerate(quiet[:5]):
            channel = "sms" if number % 2 else "email"
            add_event(connection, cid, "sent", NOW - timedelta(days=3 + number), channel=channel)
    embedded = _score(cli, ws, "--engine", "embedded", "--full")
    expected = _scores(ws)
    health = _health(ws)
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')

    first = _score(cli, ws, "--full")

    assert first["mode"] == "full"
    assert first["stages"] == embedded["stages"]
    assert first["stage_changes"] == 0
    # Every derived row came out as the embedded engine wrote it: none written again.
    assert first["rewritten"] == 0
    got = _scores(ws)
    differing = [cid for cid in expected if got.get(cid) != expected[cid]]
    assert got.keys() == expected.keys() and differing == [], differing[:3]
    # The base's health, computed by DuckDB over the history, as the store computes it.
    assert health["cost"]["total"] > 0 and health["stages"]["lost"]["count"] > 0
    assert health["erosion"]["became_lost"] > 0 and health["erosion"]["became_unreachable"] > 0
    assert _health(ws) == health
    # The score wrote the history first: every stored event, nothing personal.
    assert sorted(_history(ws)) == _stored(ws)

    # A purchase landed since: the next full run moves it in and counts it.
    buyer = next(cid for cid, row in expected.items() if row["stage"] == "lost")
    with ws.engine.begin() as connection:
        add_event(connection, buyer, "purchase", NOW - timedelta(days=2), amount=30.0)
    again = _score(cli, ws, "--full")
    after = _scores(ws)
    assert after[buyer]["stage"] == "active"
    assert after[buyer]["purchases"] == expected[buyer]["purchases"] + 1
    assert again["stages"]["active"] == embedded["stages"]["active"] + 1
    assert sorted(_history(ws)) == _stored(ws)

    # An erased contact's row goes, with nothing else written.
    erased = next(cid for cid, row in after.items() if row["stage"] == "dormant")
    with ws.engine.begin() as connection:
        connection.execute(update(contacts).where(contacts.c.id == erased).values(erased_at=NOW))
    gone = _score(cli, ws, "--full")
    assert gone["rewritten"] == 0 and gone["contacts"] == again["contacts"] - 1
    assert erased not in _scores(ws)

    # Incremental runs stay in the store: one more purchase, merged there.
    with ws.engine.begin() as connection:
        add_event(connection, buyer, "purchase", NOW - timedelta(days=1), amount=5.0)
    later = _score(cli, ws)
    assert later["mode"] == "incremental" and later["new_events"] == 1
    assert _scores(ws)[buyer]["purchases"] == expected[buyer]["purchases"] + 2


def test_a_first_duckdb_score_keeps_the_health_the_store_computes(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')

    first = _score(cli, ws, "--full")

    # Every row is new, every stage a change: the erosion counts this run's losses.
    assert first["rewritten"] == first["contacts"] == first["stage_changes"]
    kept = _health(ws)
    assert kept["erosion"]["became_lost"] > 0
    assert kept == base_health(ws, now=datetime.fromisoformat(kept["now"]))


def test_an_incremental_duckdb_score_keeps_the_health_of_its_new_day(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _duck_scored(cli, ws)
    before = _health(ws)
    # The next day a message goes to a quiet contact: it lands in the store, beyond
    # the history's high water, and the cost counts it.
    with ws.engine.begin() as connection:
        add_event(connection, _quiet(ws), "sent", NOW + timedelta(hours=12), channel="email")

    result = _next_day_score(cli, ws)

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["mode"] == "incremental"
    kept = _kept_is_the_stores(ws)
    assert kept["now"] > before["now"]
    assert kept["cost"]["lost"]["email_sent"] == before["cost"]["lost"]["email_sent"] + 1


def test_an_incremental_duckdb_score_without_a_history_keeps_the_health(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _score(cli, ws, "--engine", "embedded", "--full")
    before = _health(ws)
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')

    result = _next_day_score(cli, ws)

    # No full score on this engine yet, so no history: the store computes the health.
    assert result.exit_code == 0, result.output
    assert not list((ws.path / "history").glob("month=*"))
    kept = _kept_is_the_stores(ws)
    assert kept["now"] > before["now"]


def test_a_late_delivery_turns_an_open_of_the_history_into_a_machine_open(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    with ws.engine.begin() as connection:
        contact = connection.execute(select(func.min(events.c.contact_id))).scalar_one()
        opened_at = NOW - timedelta(days=40, hours=5)
        add_event(connection, contact, "open", opened_at, message_id="late-1")
        open_id = connection.execute(select(func.max(events.c.id))).scalar_one()
    first = _compact(cli, ws)
    assert first["mode"] == "full" and first["reason"] == "no event history yet"
    assert _history(ws)[open_id]["machine_open"] is False
    # The ESP reports the delivery after the open: one second before it.
    with ws.engine.begin() as connection:
        add_event(
            connection, contact, "delivered", opened_at - timedelta(seconds=1), message_id="late-1"
        )
    second = _compact(cli, ws)

    month = f"{opened_at:%Y-%m}"
    assert second["mode"] == "incremental"
    assert second["added"] == 1
    assert second["months_rewritten"] == [month]
    history = _history(ws)
    assert history[open_id]["machine_open"] is True
    assert sorted(history) == _stored(ws)
    assert second["events"] == len(history) and second["high_water"] == max(history)


def test_landed_events_are_appended_then_merged_by_compact(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _compact(cli, ws)
    months = _files(ws)
    assert set(months.values()) == {1}
    with ws.engine.begin() as connection:
        for days in (3, 4, 70):
            add_event(connection, 1, "visit", NOW - timedelta(days=days))
    # The score's own update appends: one more file in each month touched.
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')
    _score(cli, ws, "--full")
    appended = _files(ws)
    touched = {f"month={NOW - timedelta(days=d):%Y-%m}" for d in (3, 4, 70)}
    assert {m for m, n in appended.items() if n == 2} == touched
    assert sorted(_history(ws)) == _stored(ws)

    merged = _compact(cli, ws)

    assert merged["added"] == 0
    assert sorted(merged["months_rewritten"]) == sorted(m.removeprefix("month=") for m in touched)
    assert set(_files(ws).values()) == {1}
    assert sorted(_history(ws)) == _stored(ws)
    quiet = _compact(cli, ws)
    assert quiet["mode"] == "none" and quiet["months_rewritten"] == []
    # compact merges the month it has just appended to.
    with ws.engine.begin() as connection:
        add_event(connection, 1, "visit", NOW - timedelta(days=2))
    once = _compact(cli, ws)
    assert once["added"] == 1 and set(_files(ws).values()) == {1}
    assert sorted(_history(ws)) == _stored(ws)


def test_another_machine_open_window_writes_the_history_again(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _compact(cli, ws)
    _set(ws, "machine_open_seconds = 2", "machine_open_seconds = 5")
    result = cli.invoke(app, ["events", "compact", "-w", str(ws.path)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "written again whole" in text
    assert "scoring.machine_open_seconds = 2, the workspace says 5" in text
    manifest = json.loads((ws.path / "history" / "_winback.json").read_text(encoding="utf-8"))
    assert manifest["machine_open_seconds"] == 5


def test_duckdb_refuses_an_object_store_history(cli: CliRunner, demo_workspace: Workspace) -> None:
    ws = demo_workspace
    _set(ws, 'events_path = "history"', 'events_path = "s3://bucket/history"')
    result = cli.invoke(
        app, ["score", "-w", str(ws.path), "--now", f"{NOW:%Y-%m-%d}", "--engine", "duckdb"]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not Path(ws.path / "history").exists()


def test_a_backfill_missed_by_an_export_since_is_found_by_counting_the_files(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _compact(cli, ws)
    with ws.engine.begin() as connection:
        add_event(connection, 1, "purchase", NOW - timedelta(days=500), amount=12.0)
    # An export of the recent months only, into the workspace's history: its manifest
    # reaches the newest event, the month of the backfill is not written.
    since = f"{NOW - timedelta(days=30):%Y-%m-%d}"
    exported = cli.invoke(app, ["events", "export", "-w", str(ws.path), "--since", since])
    assert exported.exit_code == 0, exported.output
    assert len(_history(ws)) == len(_stored(ws)) - 1

    result = _compact(cli, ws)

    assert result["mode"] == "full"
    assert result["reason"] == "its files do not hold the events its manifest names"
    assert sorted(_history(ws)) == _stored(ws)


def test_a_folder_named_like_a_partition_adds_no_column(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    embedded = _score(cli, ws, "--engine", "embedded", "--full")
    expected = _scores(ws)
    _set(ws, 'events_path = "history"', 'events_path = "h/type=purchase [1]"')
    duck = _score(cli, ws, "--engine", "duckdb", "--full")
    assert duck["stages"] == embedded["stages"] and duck["stage_changes"] == 0
    assert _scores(ws) == expected


def test_a_history_that_is_not_this_stores_is_written_again(
    cli: CliRunner, demo_workspace: Workspace, tmp_path: Path
) -> None:
    ws = demo_workspace
    shared = tmp_path / "shared"
    _set(ws, 'events_path = "history"', f'events_path = "{shared}"')
    other = Workspace.init(tmp_path / "other", "ecommerce")
    with other.engine.begin() as connection:
        someone = add_contact(
            connection, email="other@example.com", created_at=NOW - timedelta(days=9)
        )
        add_event(connection, someone, "visit", NOW - timedelta(days=1))
    other.close()
    config = tmp_path / "other" / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'events_path = "history"', f'events_path = "{shared}"'
        ),
        encoding="utf-8",
    )
    assert _compact(cli, ws)["mode"] == "full"
    result = cli.invoke(app, ["events", "compact", "-w", str(tmp_path / "other"), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["mode"] == "full" and written["events"] == 1
    assert written["reason"] == "it was written from another workspace's database"
    # This workspace's store restored from an older copy: its events end below the history.
    _compact(cli, ws)
    with ws.engine.begin() as connection:
        connection.execute(events.delete().where(events.c.id == max(_stored(ws))))
    again = _compact(cli, ws)
    assert again["mode"] == "full" and "restored or recreated" in again["reason"]
    assert sorted(_history(ws, shared)) == _stored(ws)


def test_a_damaged_history_is_written_again_and_strays_are_ignored(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _compact(cli, ws)
    folder = ws.path / "history"
    month = sorted(folder.glob("month=*"))[0]
    (month / "part-0.parquet").write_bytes(b"not parquet")
    (folder / "README.txt").write_text("notes", encoding="utf-8")
    (month / "notes.txt").write_text("notes", encoding="utf-8")
    result = _compact(cli, ws)
    assert result["mode"] == "full" and "cannot be read" in result["reason"]
    assert sorted(_history(ws)) == _stored(ws)
    (folder / "_winback.json").write_text('{"format": 1, "high_water": "x"}', encoding="utf-8")
    result = _compact(cli, ws)
    assert result["mode"] == "full" and "unreadable" in result["reason"]
    assert sorted(_history(ws)) == _stored(ws)


def test_an_export_since_refuses_to_mix_two_machine_open_windows(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _compact(cli, ws)
    _set(ws, "machine_open_seconds = 2", "machine_open_seconds = 0")
    since = f"{NOW - timedelta(days=30):%Y-%m-%d}"
    result = cli.invoke(app, ["events", "export", "-w", str(ws.path), "--since", since])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "export everything again (without --since)" in " ".join(result.stderr.split())


def test_a_second_writer_waits_for_the_first_and_says_so(demo_workspace: Workspace) -> None:
    ws = demo_workspace
    heard: list[str] = []
    done: list[HistoryUpdate] = []
    with history_lock(history_target(ws)):
        writer = threading.Thread(
            target=lambda: done.append(update_history(ws, waiting=heard.append))
        )
        writer.start()
        for _ in range(200):
            if heard:
                break
            time.sleep(0.05)
        assert not done
    writer.join(timeout=60)
    assert heard and "another winback command holds the event history" in heard[0]
    assert done and done[0].mode == "full"
