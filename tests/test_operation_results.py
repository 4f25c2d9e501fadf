"""The operations the faces list from return frozen dataclasses (one convention:
``op(workspace, ..., now=...)``), and ``--json`` prints each one's ``as_dict()``: the same
keys, in the same order, as the command line has always printed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from winback.cli import app
from winback.compliance import audit_log, list_suppressions
from winback.journeys import list_journeys, outbox_counts, unknown_messages
from winback.reports import base_health
from winback.store.schema import outbox
from winback.workspace import Workspace

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial"
NOW = datetime(2027, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The tutorial's shop, one journey enrolled, ticked and sent (dry run), a contact's
    address and a stranger's suppressed, and two messages a crash left undecided."""
    folder = tmp_path_factory.mktemp("operations")
    cli = CliRunner()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("WINBACK_DATABASE_URL", raising=False)
        patch.chdir(folder)
        for name in ("contacts.csv", "events.csv"):
            shutil.copy(TUTORIAL / name, folder / name)
        assert cli.invoke(app, ["init", "shop"]).exit_code == 0
        for argv in (
            ["import", "contacts", "contacts.csv"],
            ["import", "events", "events.csv"],
            ["score", "--now", "2027-03-01"],
            ["journey", "new"],
            ["journey", "add", "shop/journeys/winback.yaml"],
            ["journey", "enroll", "winback", "--now", "2027-03-01"],
            ["tick", "--now", "2027-03-01"],
            ["dispatch", "--now", "2027-03-01", "--dry-run"],
            ["suppress", "add", "marie.0@example.com"],
            ["suppress", "add", "left@example.com"],
        ):
            result = cli.invoke(app, [*argv, "-w", "shop"])
            assert result.exit_code == 0, f"winback {' '.join(argv)}: {result.output}"
    workspace = Workspace.open(folder / "shop")
    with workspace.engine.begin() as connection:
        first_two = outbox.c.id.in_([1, 2])
        connection.execute(update(outbox).where(first_two).values(status="unknown", error="crash"))
    return workspace


def printed(workspace: Workspace, *argv: str) -> Any:
    result = CliRunner().invoke(app, [*argv, "-w", str(workspace.path), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_frozen(record: Any) -> None:
    field = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, field, None)


def test_journey_list(shop: Workspace) -> None:
    journeys = list_journeys(shop)
    assert [journey.name for journey in journeys] == ["winback"]
    (journey,) = journeys
    assert_frozen(journey)
    assert journey.status == "active" and journey.steps and journey.enrollments
    assert printed(shop, "journey", "list") == [journey.as_dict()]
    assert list(journey.as_dict()) == ["name", "status", "steps", "channels", "enrollments"]


def test_outbox_counts_and_unknown_messages(shop: Workspace) -> None:
    counts = outbox_counts(shop)
    assert_frozen(counts)
    assert counts.by_status["unknown"] == 2
    assert printed(shop, "outbox") == counts.as_dict()

    messages = unknown_messages(shop)
    assert [message.id for message in messages] == [1, 2]
    assert all(message.error == "crash" for message in messages)
    assert messages[0].due_at.tzinfo is not None
    assert_frozen(messages[0])
    shown = printed(shop, "outbox", "--unknown")
    assert shown == [message.as_dict() for message in messages]
    assert list(shown[0]) == [
        "id",
        "journey",
        "step_id",
        "channel",
        "to_address",
        "message_id",
        "due_at",
        "error",
    ]
    # A time in --json is ISO 8601, as everywhere else.
    assert shown[0]["due_at"] == messages[0].due_at.isoformat()


def test_suppress_list(shop: Workspace) -> None:
    entries = list(list_suppressions(shop))
    marie = next(entry for entry in entries if entry.address == "marie.0@example.com")
    assert_frozen(marie)
    assert marie.reason == "manual" and marie.suppressed_at.tzinfo is not None
    # No contact holds the other one: listed by its hash alone.
    assert any(entry.address is None and entry.hash for entry in entries)
    shown = printed(shop, "suppress", "list")
    assert shown == [entry.as_dict() for entry in entries]
    assert list(shown[0]) == [
        "channel",
        "address",
        "hash",
        "reason",
        "suppressed_at",
        "refused_at",
    ]


def test_audit(shop: Workspace) -> None:
    records = audit_log(shop)
    enrolled = [record for record in records if record.action == "enrol"]
    assert enrolled and all(record.address for record in enrolled)
    assert_frozen(records[0])
    shown = printed(shop, "audit")
    assert shown == [record.as_dict() for record in records]
    assert list(shown[0]) == [
        "id",
        "at",
        "actor",
        "contact_id",
        "contact_key",
        "action",
        "reason",
        "details",
        "address",
    ]


def test_status_takes_the_workspace_and_now(shop: Workspace) -> None:
    report = base_health(shop, now=NOW)
    assert report["now"] == NOW.isoformat()
    assert report["contacts"] == sum(item["count"] for item in report["stages"].values())
    assert printed(shop, "status", "--now", "2027-03-01") == report
