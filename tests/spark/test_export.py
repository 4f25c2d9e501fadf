"""``winback events export --parquet DIR``: what a data engineer checks in the files."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import select
from typer.testing import CliRunner

from tests.builders import add_contact, add_event
from tests.spark.conftest import BODY, BROWSER, IP, PROXY, SOURCE, URL
from winback.cli import app
from winback.scoring.history_export import export_history
from winback.scoring.machine_open import is_machine_open
from winback.store.schema import contacts, events
from winback.workspace import Workspace

COLUMNS = [
    "id",
    "contact_id",
    "type",
    "channel",
    "occurred_at",
    "amount",
    "currency",
    "campaign",
    "message_id",
    "outbox_id",
    "discount_code",
    "bot",
    "machine_open",
]


def _export(cli: CliRunner, ws: Workspace, *args: str) -> dict[str, Any]:
    result = cli.invoke(app, ["events", "export", "-w", str(ws.path), "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _history(folder: Path) -> ds.Dataset:
    return ds.dataset(folder, format="parquet", partitioning="hive")


def test_export_holds_every_event_and_no_personal_column(
    cli: CliRunner, demo_workspace: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "history"
    summary = _export(cli, demo_workspace, "--parquet", str(out))
    with demo_workspace.engine.connect() as connection:
        stored = connection.execute(select(events.c.id).order_by(events.c.id)).scalars().all()
        emails = connection.execute(select(contacts.c.email)).scalars().all()
    files = sorted(out.rglob("*.parquet"))
    assert files and summary["events"] == len(stored)
    for file in files:
        # The schema of every file: no ip, user agent, URL, body, source or dedup key.
        assert pq.read_schema(file).names == COLUMNS
    table = _history(out).to_table()
    assert sorted(table.column("id").to_pylist()) == stored
    # Neither in the values (read back) nor anywhere in the bytes (footers, statistics).
    values = " ".join(str(v) for column in table.columns for v in column.to_pylist())
    raw = b"".join(file.read_bytes() for file in files)
    for personal in (IP, BROWSER, PROXY, URL, BODY, SOURCE, *emails[:50]):
        assert personal not in values
        assert personal.encode() not in raw


def test_export_is_partitioned_by_month_for_duckdb(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    summary = _export(cli, demo_workspace)
    out = demo_workspace.path / "history"
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == [f"month={m}" for m in summary["months"]]
    assert folders[0] == "month=2023-12" and folders[-1] == "month=2026-12"
    relation = duckdb.sql(
        f"SELECT month, strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m') AS real, count(*) "
        f"FROM read_parquet('{out}/*/*.parquet', hive_partitioning = true) GROUP BY ALL"
    )
    assert relation is not None
    rows = relation.fetchall()
    assert all(month == real for month, real, _ in rows)
    assert sum(count for *_, count in rows) == summary["events"]


def test_machine_flag_is_resolved_by_the_scoring_rule(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    _export(cli, demo_workspace)
    exported = _history(demo_workspace.path / "history").to_table(
        filter=pc.field("type") == "open", columns=["id", "machine_open"]
    )
    flags = dict(
        zip(*(exported.column(c).to_pylist() for c in ("id", "machine_open")), strict=True)
    )
    seconds = demo_workspace.config.scoring.machine_open_seconds
    e, d = events.alias("e"), events.alias("d")
    delivered = (
        select(d.c.occurred_at)
        .where(
            d.c.contact_id == e.c.contact_id,
            d.c.message_id == e.c.message_id,
            d.c.type == "delivered",
        )
        .scalar_subquery()
    )
    with demo_workspace.engine.connect() as connection:
        opens = connection.execute(
            select(e.c.id, e.c.machine_open, e.c.user_agent, e.c.occurred_at, delivered).where(
                e.c.type == "open"
            )
        ).all()
    expected = {
        id_: is_machine_open(
            flag=flag,
            user_agent=agent,
            opened_at=at,
            delivered_at=sent,
            machine_open_seconds=seconds,
        )
        for id_, flag, agent, at, sent in opens
    }
    assert flags == expected
    # The base holds every branch of the rule, both ways.
    assert sum(expected.values()) and not all(expected.values())


def test_since_rewrites_its_months_and_a_full_export_the_whole_history(
    cli: CliRunner, demo_workspace: Workspace, tmp_path: Path
) -> None:
    out = tmp_path / "history"
    full = _export(cli, demo_workspace, "--parquet", str(out))
    march = out / "month=2026-03" / "part-0.parquet"
    before = march.stat().st_mtime_ns
    (out / "month=2019-01").mkdir()  # a month no event falls in any more
    partial = _export(cli, demo_workspace, "--parquet", str(out), "--since", "2026-10-15")
    assert partial["months"] == ["2026-10", "2026-11", "2026-12"]
    assert partial["since"] == "2026-10-15"
    assert march.stat().st_mtime_ns == before
    assert _history(out).count_rows() == full["events"]
    _export(cli, demo_workspace, "--parquet", str(out))
    assert not (out / "month=2019-01").exists()
    assert _history(out).count_rows() == full["events"]
    manifest = json.loads((out / "_winback.json").read_text())
    assert manifest["high_water"] == full["high_water"] == full["events"]


def test_export_refuses_the_workspace_folder_and_a_file(
    cli: CliRunner, demo_workspace: Workspace, tmp_path: Path
) -> None:
    for target in (demo_workspace.path, demo_workspace.path.parent):
        result = cli.invoke(
            app, ["events", "export", "-w", str(demo_workspace.path), "--parquet", str(target)]
        )
        assert result.exit_code == 2, result.output
        assert "refusing to export there" in result.stderr
        assert not list(target.glob("month=*"))
    file = tmp_path / "events.parquet"
    file.write_text("keep me")
    result = cli.invoke(
        app, ["events", "export", "-w", str(demo_workspace.path), "--parquet", str(file)]
    )
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert file.read_text() == "keep me"
    result = cli.invoke(
        app, ["events", "export", "-w", str(demo_workspace.path), "--since", "last week"]
    )
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def test_progress_reaches_the_total(demo_workspace: Workspace, tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    result = export_history(
        demo_workspace,
        str(tmp_path / "h"),
        batch_rows=5_000,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(seen) > 3
    assert seen[-1] == (result.events, result.events)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert result.as_dict()["since"] is None


def test_export_on_each_database(workspace: Workspace, tmp_path: Path) -> None:
    """The same rule and columns from SQLite and PostgreSQL: each kind of open, and the
    flags of other events as stored."""
    sent = datetime(2026, 5, 31, 23, 59, 0, tzinfo=UTC)
    with workspace.engine.begin() as connection:
        who = add_contact(connection, email="ana@example.com", created_at=sent - timedelta(days=9))
        add_event(connection, who, "delivered", sent, message_id="m1")
        add_event(connection, who, "open", sent + timedelta(seconds=1), message_id="m1")
        add_event(connection, who, "open", sent + timedelta(minutes=5), message_id="m1")
        add_event(connection, who, "open", sent + timedelta(hours=1), user_agent=PROXY)
        add_event(connection, who, "open", sent, machine_open=True, ip=IP)
        add_event(connection, who, "click", sent + timedelta(hours=1), bot=True, url=URL)
        add_event(connection, who, "purchase", sent, amount=12.5, discount_code="WB-10")
    out = tmp_path / "h"
    result = export_history(workspace, str(out))
    assert result.months == ["2026-05", "2026-06"]
    table = _history(out).to_table().sort_by("id")
    assert table.column_names == [*COLUMNS, "month"]
    rows = [
        (r["type"], r["machine_open"], r["bot"], r["month"], r["discount_code"])
        for r in table.to_pylist()
    ]
    assert rows == [
        ("delivered", None, None, "2026-05", None),
        ("open", True, None, "2026-05", None),
        ("open", False, None, "2026-06", None),
        ("open", True, None, "2026-06", None),
        ("open", True, None, "2026-05", None),
        ("click", None, True, "2026-06", None),
        ("purchase", None, None, "2026-05", "WB-10"),
    ]
    assert table.column("occurred_at").type.tz == "UTC"
