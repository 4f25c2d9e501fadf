"""The seam for another engine: a score whose facts someone else computed.

An engine that computes the facts elsewhere (Spark over Parquet) runs the same
``facts_select`` there and fills the ``score_facts`` table; the rest of the score
(breakpoints, stages, RFM, the write) runs in the store as usual.
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest
from sqlalchemy import Connection, insert, select

from tests.builders import add_contact, add_event, day
from winback.scoring import score
from winback.scoring.facts import facts_select, score_facts
from winback.scoring.run import ScoreRun
from winback.scoring.spark import score_workspace
from winback.store.schema import contact_scores
from winback.workspace import Workspace

NOW = day(2025, 6, 1, 0)


def _base(ws: Workspace) -> None:
    with ws.engine.begin() as c:
        for number in range(6):
            who = add_contact(c, email=f"p{number}@example.com", created_at=NOW - timedelta(900))
            for k in range(number):
                add_event(c, who, "purchase", NOW - timedelta(days=40 * k + 3), amount=10.0 * k)
            add_event(c, who, "delivered", NOW - timedelta(days=2), message_id=f"m{number}")
            add_event(c, who, "open", NOW - timedelta(days=2, seconds=-1), message_id=f"m{number}")
            add_event(c, who, "visit", NOW - timedelta(days=20 * number))


def _rows(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as c:
        return [
            dict(r) for r in c.execute(select(contact_scores).order_by("contact_id")).mappings()
        ]


def test_facts_filled_by_another_engine_give_the_same_scores(workspace: Workspace) -> None:
    _base(workspace)
    score(workspace, now=NOW, full=True)
    expected = _rows(workspace)
    filled: list[int] = []

    def elsewhere(connection: Connection, run: ScoreRun) -> None:
        # Computed apart from the insert, then written row by row, as an engine outside
        # the store would.
        rows = [dict(r) for r in connection.execute(facts_select(run)).mappings()]
        connection.execute(insert(score_facts), rows)
        filled.append(len(rows))

    result = score(workspace, now=NOW + timedelta(days=1), full=True, facts_filler=elsewhere)
    assert filled == [6]
    assert result.mode == "full"
    # An incremental run merges the new events in the store: the filler is not asked.
    assert score(workspace, now=NOW + timedelta(days=1), facts_filler=elsewhere).mode == (
        "incremental"
    )
    assert filled == [6]
    later = _rows(workspace)
    assert [r["stage"] for r in later] == [r["stage"] for r in expected]
    for got, want in zip(later, expected, strict=True):
        for name in ("last_interaction_at", "purchases", "total_spend", "monetary_score"):
            assert got[name] == want[name], name
        assert got["clock_days"] == want["clock_days"] + 1


def test_the_duckdb_engine_gives_the_same_scores_on_either_store(workspace: Workspace) -> None:
    _base(workspace)
    score(workspace, now=NOW, full=True)
    expected = _rows(workspace)

    result = score_workspace(workspace, now=NOW, full=True, engine="duckdb")

    assert result.mode == "full" and result.stage_changes == 0
    got = _rows(workspace)
    for row in (*got, *expected):
        del row["scored_at"]
    assert got == expected
    # The history it read holds every event of the store, the machine opens resolved.
    history = ds.dataset(workspace.path / "history", partitioning="hive").to_table()
    assert history.num_rows == 6 * 3 + sum(range(6))
    assert pc.sum(history.column("machine_open")).as_py() == 6


def test_the_facts_scratch_database_is_let_go(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A temporary folder of this test's own: other runs on the machine have theirs.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    _base(sqlite_workspace)
    score_workspace(sqlite_workspace, now=NOW, full=True, engine="duckdb")
    # Every pooled connection: none still holds the facts' scratch database.
    connections = [sqlite_workspace.engine.connect() for _ in range(3)]
    try:
        for connection in connections:
            names = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
            assert names == ["main"] or sorted(names) == ["main", "temp"]
    finally:
        for connection in connections:
            connection.close()
    assert not list(scratch.iterdir())


def test_the_duckdb_engine_scores_a_base_without_events(sqlite_workspace: Workspace) -> None:
    with sqlite_workspace.engine.begin() as c:
        add_contact(c, email="quiet@example.com", created_at=NOW - timedelta(400))
    result = score_workspace(sqlite_workspace, now=NOW, full=True, engine="duckdb")
    assert result.mode == "full" and result.contacts == 1
    assert _rows(sqlite_workspace)[0]["purchases"] == 0
