"""``winback score --engine spark``: the same stages, clocks and RFM as the embedded
engine, contact by contact, with real Spark in local mode."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_event
from tests.spark.conftest import NOW
from winback.cli import app
from winback.errors import ConfigError
from winback.scoring.facts import facts_select
from winback.scoring.run import ScoreRun
from winback.scoring.spark import spark_sql
from winback.scoring.stages import Policy
from winback.store.schema import contact_scores
from winback.workspace import Workspace

DAY = NOW.date().isoformat()
MONEY = ("total_spend", "avg_spend")


def _scores(ws: Workspace) -> dict[int, dict[str, Any]]:
    """Every contact's stored row, but the time it was written. Sums of amounts differ in
    their last bits with the order of the additions: they compare approximately."""
    with ws.engine.connect() as connection:
        rows = connection.execute(select(contact_scores)).mappings().all()
    return {
        row["contact_id"]: {
            k: pytest.approx(v, rel=1e-12) if k in MONEY and v is not None else v
            for k, v in row.items()
            if k != "scored_at"
        }
        for row in rows
    }


def _score(cli: CliRunner, ws: Workspace, *args: str) -> dict[str, Any]:
    result = cli.invoke(app, ["score", "-w", str(ws.path), "--now", DAY, "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _set(ws: Workspace, old: str, new: str) -> None:
    config = ws.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    assert old in text
    config.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.usefixtures("spark_ready")
def test_spark_scores_equal_the_embedded_engine(cli: CliRunner, demo_workspace: Workspace) -> None:
    ws = demo_workspace
    embedded = _score(cli, ws, "--engine", "embedded")
    expected = _scores(ws)
    export = cli.invoke(app, ["events", "export", "-w", str(ws.path), "--json"])
    assert export.exit_code == 0, export.output
    high_water = json.loads(export.stdout)["high_water"]
    # A copy of a month kept beside the history (a backup) is not the history: read, it
    # would count its events twice.
    month = next((ws.path / "history").glob("month=*"))
    (ws.path / "history" / "backup").mkdir()
    shutil.copy(next(month.glob("*.parquet")), ws.path / "history" / "backup" / "copy.parquet")
    # A purchase imported after the export: Spark does not see it, the next embedded
    # (incremental) run does.
    buyer = next(cid for cid, row in expected.items() if row["stage"] == "lost")
    with ws.engine.begin() as connection:
        add_event(connection, buyer, "purchase", NOW - timedelta(days=2), amount=30.0)
    _set(ws, 'kind = "embedded"', 'kind = "spark"')

    spark = _score(cli, ws)

    assert spark["mode"] == "full"
    assert spark["stages"] == embedded["stages"]
    assert spark["stage_changes"] == 0
    got = _scores(ws)
    assert got.keys() == expected.keys()
    differing = [cid for cid in expected if got[cid] != expected[cid]]
    assert differing == [], (expected[differing[0]], got[differing[0]])
    assert sum(row["stage"] == "active" for row in got.values()) > 10

    later = _score(cli, ws, "--engine", "embedded")
    assert later["mode"] == "incremental"
    assert later["new_events"] == 1
    assert later["reason"] == f"1 new events since event {high_water}"
    after = _scores(ws)
    assert after[buyer]["purchases"] == expected[buyer]["purchases"] + 1
    assert after[buyer]["stage"] == "active"
    # A full score reads every event again: the same facts and stages (its quintile
    # breakpoints are those of the day, where the incremental run kept the last ones).
    _score(cli, ws, "--engine", "embedded", "--full")
    final = _scores(ws)
    moved = {k for c in final for k in final[c] if final[c][k] != after[c][k]}
    assert moved <= {"recency_score", "frequency_score", "monetary_score", "spend_level"}


def test_spark_refuses_a_missing_export_or_one_resolved_otherwise(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    args = ["score", "-w", str(ws.path), "--now", DAY, "--engine", "spark"]
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    assert "no event history exported there" in result.stderr
    assert "winback events export" in result.stderr
    assert cli.invoke(app, ["events", "export", "-w", str(ws.path)]).exit_code == 0
    _set(ws, "machine_open_seconds = 2", "machine_open_seconds = 5")
    result = cli.invoke(app, args)
    assert result.exit_code == 2
    assert "scoring.machine_open_seconds = 2" in result.stderr
    assert "run `winback events export` again" in result.stderr
    with ws.engine.connect() as connection:
        assert connection.execute(select(contact_scores)).first() is None


def test_the_spark_select_reads_the_resolved_flag(demo_workspace: Workspace) -> None:
    config = demo_workspace.config
    run = ScoreRun(
        policy=Policy.from_config(config.policy),
        timezone=config.workspace.timezone,
        machine_open_seconds=2,
        now=NOW,
    )
    sql = spark_sql(facts_select(run, machine_resolved=True))
    assert "machine_open IS true" in sql
    for absent in ("EXISTS", "user_agent", "message_id", "OFFSET", "LIMIT"):
        assert absent not in sql
    assert "unix_date(to_date(from_utc_timestamp(" in sql and "'Europe/Paris'" in sql
    assert "EXISTS" in spark_sql(facts_select(run))


def test_engine_section_names_a_wrong_kind(demo_workspace: Workspace) -> None:
    _set(demo_workspace, 'kind = "embedded"', 'kind = "hadoop"')
    with pytest.raises(ConfigError, match=r"winback.toml: engine.kind: Input should be"):
        Workspace.open(demo_workspace.path)
