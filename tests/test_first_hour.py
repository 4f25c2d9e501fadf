"""What a new user meets in the first hour at the terminal (issue 18): ``init`` says what
to fill in, ``status`` on an unscored base says what to run, a table fits a narrow
terminal, adding a journey again says nothing but that it was updated, and a second
dispatch names the workspace it waits for."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.cli.common import console
from winback.journeys.flight import DispatchBusy, dispatch_lock
from winback.workspace import Workspace


def test_init_ends_with_the_settings_to_fill_before_a_real_send(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WINBACK_DATABASE_URL", raising=False)
    result = cli.invoke(app, ["init", str(tmp_path / "shop")])
    assert result.exit_code == 0, result.output
    last = " ".join(result.output.split("Before the first real send")[1].split())
    for setting in ("workspace.public_url", "workspace.shop_url", "[email] host", "winback doctor"):
        assert setting in last


def test_status_of_an_unscored_base_says_to_score_it_and_fits_a_narrow_terminal(
    sqlite_workspace: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite_workspace.engine.begin() as connection:
        add_contact(connection, email="ann@example.com", created_at=day(2026, 1, 5))
    monkeypatch.setattr(console, "width", 60)
    result = cli.invoke(app, ["status", "-w", str(sqlite_workspace.path)])
    assert result.exit_code == 0, result.output
    assert "run `winback score`" in " ".join(result.output.split())
    # Rich cut a header too long for its column with an ellipsis (`unsubscri…`).
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 60


def test_adding_a_journey_again_updates_it_without_a_warning(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    """pytest turns warnings into errors: the update's query raised SQLAlchemy's
    SAWarning about ``distinct()`` outside an aggregate."""
    where = ["-w", str(sqlite_workspace.path)]
    assert cli.invoke(app, ["journey", "new", *where]).exit_code == 0
    journey = str(sqlite_workspace.journeys_dir / "winback.yaml")
    assert cli.invoke(app, ["journey", "add", journey, *where]).exit_code == 0
    again = cli.invoke(app, ["journey", "add", journey, *where])
    assert again.exit_code == 0, again.output
    assert again.output.startswith("Updated journey winback")


def test_a_second_dispatch_names_the_workspace_it_waits_for(
    sqlite_workspace: Workspace, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sqlite_workspace.path)
    with dispatch_lock(sqlite_workspace):
        result = cli.invoke(app, ["dispatch", "-w", "."])
    assert result.exit_code == DispatchBusy.exit_code
    assert f"running on the workspace {sqlite_workspace.path.resolve()} " in result.output
