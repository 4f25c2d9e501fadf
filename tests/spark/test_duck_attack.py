"""Attacks on the DuckDB engine's full score (SQLite): the rows it keeps or writes back,
the stored values it reads, and what a run leaves behind when something else happens
meanwhile. The embedded engine is the reference, contact by contact."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from tests.builders import add_contact
from tests.spark.conftest import NOW
from tests.spark.test_spark_score import DAY, _score, _scores, _set
from winback.cli import app
from winback.scoring.history_update import update_history
from winback.store.schema import contact_scores, contacts
from winback.workspace import ENV_DATABASE_URL, Workspace


def _differing(got: dict[int, Any], expected: dict[int, Any]) -> list[tuple[int, Any]]:
    """The contacts whose rows differ, with each differing column as (got, expected)."""
    found = []
    for cid in sorted(got.keys() | expected.keys()):
        mine, theirs = got.get(cid) or {}, expected.get(cid) or {}
        columns = {
            name: (mine.get(name), theirs.get(name))
            for name in mine.keys() | theirs.keys()
            if mine.get(name) != theirs.get(name)
        }
        if columns or (cid in got) != (cid in expected):
            found.append((cid, columns))
    return found


def test_a_model_fit_reaches_the_rows_of_a_duckdb_full_score(
    cli: CliRunner, demo_workspace: Workspace
) -> None:
    ws = demo_workspace
    _score(cli, ws, "--engine", "embedded", "--full")
    fit = cli.invoke(app, ["models", "fit", "-w", str(ws.path), "--now", DAY])
    assert fit.exit_code == 0, fit.output

    _score(cli, ws, "--engine", "duckdb", "--full")
    got = _scores(ws)
    _score(cli, ws, "--engine", "embedded", "--full")
    expected = _scores(ws)

    # Every customer now has a P(alive): a stored NULL beside a new value is a change.
    assert any(row["p_alive"] is not None for row in expected.values())
    differing = _differing(got, expected)
    assert differing == [], differing[:3]


# Values other tools write into the contacts' columns the score reads.
FOREIGN_VALUES = {
    # A CRM export that keeps the creation time's UTC offset: an instant east of UTC.
    "created_at with an offset": (
        "UPDATE contacts SET created_at = substr(created_at, 1, 10) || ' 03:00:00+05:00'"
    ),
    # A boolean imported as text.
    "subscription_active as text": (
        "UPDATE contacts SET subscription_active = 'true' WHERE id % 7 = 0"
    ),
}


@pytest.mark.parametrize("statement", FOREIGN_VALUES.values(), ids=FOREIGN_VALUES.keys())
def test_values_written_by_other_tools_score_the_same_on_both_engines(
    cli: CliRunner, demo_workspace: Workspace, statement: str
) -> None:
    ws = demo_workspace
    _set(ws, "protect_subscribers = false", "protect_subscribers = true")
    with ws.engine.begin() as connection:
        assert connection.execute(text(statement)).rowcount > 0
    embedded = _score(cli, ws, "--engine", "embedded", "--full")
    expected = _scores(ws)

    got_run = _score(cli, ws, "--engine", "duckdb", "--full")

    differing = _differing(_scores(ws), expected)
    assert differing == [], differing[:3]
    assert got_run["stages"] == embedded["stages"]


def test_a_command_writing_during_a_duckdb_score_does_not_break_it(
    cli: CliRunner, demo_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = demo_workspace
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')
    _score(cli, ws, "--full")
    with ws.engine.connect() as connection:
        contact = connection.execute(
            select(contacts.c.id)
            .join(contact_scores, contact_scores.c.contact_id == contacts.c.id)
            .where(contacts.c.email_status == "subscribed", contacts.c.sms_status == "none")
            .limit(1)
        ).scalar_one()
    database = ws.path / "winback.db"
    written: list[int] = []

    def unsubscribe() -> None:
        # What `winback suppress add ... --reason unsubscribe` (or `winback serve`'s
        # one-click unsubscribe) writes, from another connection.
        with sqlite3.connect(database, timeout=60) as other:
            other.execute(
                "UPDATE contacts SET email_status = 'unsubscribed', email_status_at = ? "
                "WHERE id = ?",
                (f"{DAY} 08:00:00.000000", contact),
            )
        written.append(contact)

    writer = threading.Thread(target=unsubscribe)

    def meanwhile(*args: Any, **kwargs: Any) -> Any:
        # The score has begun reading the store; the other command writes now, and the
        # score goes on without waiting longer for it.
        writer.start()
        writer.join(timeout=5)
        return update_history(*args, **kwargs)

    monkeypatch.setattr("winback.scoring.duck.update_history", meanwhile)
    during = cli.invoke(app, ["score", "-w", str(ws.path), "--now", DAY, "--json", "--full"])
    writer.join()

    assert during.exit_code == 0, during.output
    assert written == [contact]
    monkeypatch.setattr("winback.scoring.duck.update_history", update_history)
    _score(cli, ws)
    assert _scores(ws)[contact]["stage"] == "unsubscribed"


def test_a_score_stopped_by_sigterm_leaves_no_scratch_files(
    demo_workspace: Workspace, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # A deterministic SIGTERM (a cron timeout, `systemctl stop`, a container stop):
    # once the store's contacts have been read for DuckDB.
    code = (
        "import os, signal, sys\n"
        "from winback.scoring import duck_rows\n"
        "from winback.cli import main\n"
        "def stop(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    raise SystemExit('SIGTERM did not stop the score')\n"
        "duck_rows.changed_rows = stop\n"
        "sys.argv = ['winback', *sys.argv[1:]]\n"
        "main()\n"
    )
    args = ["score", "-w", str(demo_workspace.path), "--engine", "duckdb", "--full"]
    env = {**os.environ, "TMPDIR": str(scratch)}
    env.pop(ENV_DATABASE_URL, None)
    done = subprocess.run(
        [sys.executable, "-c", code, *args, "--now", DAY],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0, done.stderr
    assert sorted(p.name for p in scratch.rglob("*")) == []


def test_a_database_file_named_like_a_uri_is_the_one_read(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A relative path whose name begins with ``file:``: SQLite opens that very file.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_DATABASE_URL, "sqlite:///file:shop.db")
    ws = Workspace.init(tmp_path / "ws", "ecommerce")
    try:
        with ws.engine.begin() as connection:
            add_contact(connection, email="ann@example.com", created_at=NOW)
    finally:
        ws.close()

    result = cli.invoke(
        app, ["score", "-w", str(tmp_path / "ws"), "--engine", "duckdb", "--full", "--json"]
    )

    assert result.exit_code == 0, result.output
    assert '"prospect": 1' in result.stdout
    # Nothing else created beside it.
    assert not (tmp_path / "shop.db").exists()


def test_an_empty_base_then_one_contact_in_an_unusual_folder(
    cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held: a workspace folder and a database name with spaces, accents and ``#``; no
    contact, then one contact and no event."""
    folder = tmp_path / "mon dossier élève #1"
    folder.mkdir()
    monkeypatch.setenv(ENV_DATABASE_URL, f"sqlite:///{folder}/base #2 ü.db")
    ws = Workspace.init(folder / "ws", "ecommerce")
    ws.close()
    _set(ws, 'kind = "embedded"', 'kind = "duckdb"')

    empty = _score(cli, ws, "--full")
    assert empty["contacts"] == 0 and empty["stages"] == {}

    ws = Workspace.open(folder / "ws")
    try:
        with ws.engine.begin() as connection:
            add_contact(connection, email="ann@example.com", created_at=NOW)
        one = _score(cli, ws, "--full")
        got = _scores(ws)
        _score(cli, ws, "--engine", "embedded", "--full")
        assert one["stages"] == {"prospect": 1} and one["rewritten"] == 1
        assert got == _scores(ws)
    finally:
        ws.close()


def test_a_text_boolean_past_the_readers_first_rows_is_read(
    cli: CliRunner, sqlite_workspace: Workspace
) -> None:
    # More contacts than the reader types from its first rows (ADBC reads batches of
    # 1,024), the last one's paid subscription written as text by another tool.
    ws = sqlite_workspace
    with ws.engine.begin() as connection:
        connection.execute(
            text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1500) "
                "INSERT INTO contacts (email, created_at, updated_at, email_status, sms_status) "
                "SELECT 'c' || i || '@example.com', '2026-01-05 10:00:00.000000', "
                "'2026-01-05 10:00:00.000000', 'subscribed', 'none' FROM n"
            )
        )
        connection.execute(text("UPDATE contacts SET subscription_active = 'true' WHERE id = 1500"))
    embedded = _score(cli, ws, "--engine", "embedded", "--full")

    result = cli.invoke(
        app, ["score", "-w", str(ws.path), "--now", DAY, "--json", "--engine", "duckdb", "--full"]
    )

    assert result.exit_code == 0, result.output
    assert embedded["contacts"] == 1500
