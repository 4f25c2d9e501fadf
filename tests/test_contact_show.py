"""``winback contact show``: one contact with its statuses, stage and events."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.builders import add_contact, add_event, day
from winback.cli import app
from winback.workspace import Workspace


def test_show_includes_stage_and_history(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    with sqlite_workspace.engine.begin() as connection:
        ann = add_contact(connection, email="ann@example.com", created_at=day(2024, 1, 1))
        add_event(connection, ann, "purchase", day(2024, 2, 1), amount=30.0)
    where = ["-w", str(sqlite_workspace.path)]
    assert cli.invoke(app, ["score", "--now", "2024-09-01", *where]).exit_code == 0
    result = cli.invoke(app, ["contact", "show", "ANN@example.com", "--json", *where])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["contact"]["email_status"] == "subscribed"
    assert shown["stage"] == "dormant"  # 213 days since the purchase, ecommerce policy
    assert shown["stage_history"][-1]["to"] == "dormant"
    assert [event["type"] for event in shown["events"]] == ["purchase"]


def test_unknown_contact_exit_code(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["contact", "show", "zed@example.com", "-w", str(sqlite_workspace.path)]
    )
    assert result.exit_code == 4
    assert "no contact with the address zed@example.com" in result.output
