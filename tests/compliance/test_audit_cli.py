"""``winback audit``: every decision about a contact, filtered as a user asks."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.workspace import Workspace


def test_audit_lists_filters_and_follows_a_contact_after_erasure(
    workspace: Workspace, cli: CliRunner
) -> None:
    with workspace.engine.begin() as c:
        add_contact(c, email="ann@example.com", phone="+33611111111", created_at=day(2024, 1, 1))
        add_contact(c, email="ben@example.com", created_at=day(2024, 1, 1))
    path = str(workspace.path)

    def run(*args: str) -> str:
        result = cli.invoke(app, [*args, "-w", path])
        assert result.exit_code == 0, result.output
        return result.output

    run("suppress", "add", "ann@example.com", "--reason", "unsubscribe", "--now", "2025-01-10")
    run("suppress", "add", "ben@example.com", "--now", "2025-02-10")
    run("gdpr", "erase", "ann@example.com", "--now", "2025-03-10")

    everything = json.loads(run("audit", "--json"))
    assert [r["action"] for r in everything] == [
        "status_change", "suppress", "suppress", "suppress", "erase",
    ]  # fmt: skip
    ann = json.loads(run("audit", "--contact", "ANN@example.com", "--json"))
    assert [(r["action"], r["reason"]) for r in ann] == [
        ("status_change", "email unsubscribed"),
        ("suppress", "unsubscribe"),
        ("suppress", "erased"),  # the phone
        ("erase", "erasure request"),
    ]
    by_phone = json.loads(run("audit", "--contact", "06 11 11 11 11", "--json"))
    assert by_phone == ann
    since = json.loads(run("audit", "--since", "2025-02-01", "--json"))
    assert [r["at"][:10] for r in since] == ["2025-02-10", "2025-03-10", "2025-03-10"]
    table = run("audit", "--contact", "ben@example.com")
    assert "manual" in table and "1 records" in table
    assert "ben@example.com" in table  # the address, not an id (issue 18)
    erased = run("audit", "--contact", "ann@example.com")
    assert "erased " in erased and "ann@example.com" not in erased.replace("--contact", "")
