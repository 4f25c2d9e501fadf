"""``winback suppress add|remove|list|import|export``, as a user runs them."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from typer.testing import CliRunner

from tests.builders import add_contact, day
from tests.compliance.conftest import audit_actions, contact, suppression_reasons, write
from winback.cli import app
from winback.compliance.suppression import address_hash
from winback.ingest.contacts import import_contacts
from winback.workspace import Workspace

NOW = "2025-06-30"


def run(cli: CliRunner, workspace: Workspace, *args: str) -> str:
    result = cli.invoke(app, [*args, "-w", str(workspace.path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_add_list_remove_with_the_reason_and_the_audit(
    workspace: Workspace, cli: CliRunner
) -> None:
    with workspace.engine.begin() as connection:
        alice = add_contact(
            connection, email="alice@example.com", phone="+33612345678", created_at=day(2024, 1, 1)
        )
    run(cli, workspace, "suppress", "add", "Alice@Example.com", "--reason", "complaint")
    run(cli, workspace, "suppress", "add", "06 12 34 56 78", "--now", NOW)
    run(cli, workspace, "suppress", "add", "stranger@example.org")
    assert contact(workspace, alice)["email_status"] == "complained"
    assert contact(workspace, alice)["sms_status"] == "subscribed"  # manual: the list only
    listed = json.loads(run(cli, workspace, "suppress", "list", "--json"))
    assert [(e["channel"], e["address"], e["reason"]) for e in listed] == [
        ("email", "alice@example.com", "complaint"),
        ("sms", "+33612345678", "manual"),
        ("email", None, "manual"),  # no contact holds it: only its hash is known
    ]
    assert listed[2]["hash"] == address_hash(workspace, "email", "stranger@example.org")
    only_sms = json.loads(run(cli, workspace, "suppress", "list", "--channel", "sms", "--json"))
    assert [e["address"] for e in only_sms] == ["+33612345678"]

    output = run(
        cli,
        workspace,
        "suppress",
        "remove",
        "+33612345678",
        "--note",
        "asked by phone",
        "--now",
        NOW,
    )
    assert "manual" in output
    assert suppression_reasons(workspace)["sms"] == []
    assert ("unsuppress", "asked by phone") in audit_actions(workspace, alice)

    again = cli.invoke(app, ["suppress", "remove", "+33612345678", "-w", str(workspace.path)])
    assert again.exit_code == 4 and "not on the sms suppression list" in again.output


def test_an_unknown_reason_is_refused(workspace: Workspace, cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["suppress", "add", "a@example.com", "--reason", "bored", "-w", str(workspace.path)]
    )
    assert result.exit_code == 2 and "bored" in result.output


def test_export_shows_addresses_of_present_contacts_and_hashes_of_erased_ones(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    with workspace.engine.begin() as connection:
        add_contact(connection, email="alice@example.com", created_at=day(2024, 1, 1))
        add_contact(connection, email="bob@example.com", created_at=day(2024, 1, 1))
    run(cli, workspace, "suppress", "add", "alice@example.com", "--reason", "unsubscribe")
    run(cli, workspace, "suppress", "add", "bob@example.com")
    run(cli, workspace, "gdpr", "erase", "bob@example.com")
    out = tmp_path / "suppressions.csv"
    run(cli, workspace, "suppress", "export", "--out", str(out))
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["channel"], r["address"], r["reason"]) for r in rows] == [
        ("email", "alice@example.com", "unsubscribe"),
        ("email", "", "manual"),
    ]
    assert rows[0]["hash"] == ""
    assert rows[1]["hash"] == address_hash(workspace, "email", "bob@example.com")
    assert "bob@example.com" not in out.read_text(encoding="utf-8")
    to_stdout = run(cli, workspace, "suppress", "export")
    assert list(csv.DictReader(io.StringIO(to_stdout))) == rows


def test_import_reads_addresses_and_hashes_and_reports_bad_lines(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    with workspace.engine.begin() as connection:
        carol = add_contact(connection, email="carol@example.com", created_at=day(2024, 1, 1))
    digest = address_hash(workspace, "email", "gone@example.com")
    listing = write(
        tmp_path,
        "esp-unsubscribed.csv",
        f"""
        email;reason;channel;hash
        CAROL@example.com;unsubscribe;;
        ;;email;{digest}
        not an address;;;
        +33 6 11 22 33 44;;;
        dave@example.com;bored;;
        """,
    )
    result = json.loads(run(cli, workspace, "suppress", "import", str(listing), "--json"))
    assert result["added"] == 3 and result["already"] == 0
    assert [line for line, _ in result["rejected"]] == [4, 6]
    assert contact(workspace, carol)["email_status"] == "unsubscribed"
    assert suppression_reasons(workspace) == {
        "email": ["unsubscribe", "manual"],
        "sms": ["manual"],
    }
    again = json.loads(run(cli, workspace, "suppress", "import", str(listing), "--json"))
    assert again["added"] == 0 and again["already"] == 3


def test_a_suppressed_address_imported_again_after_erasure_stays_suppressed(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    base = write(tmp_path, "base.csv", "email,first_name\nerin@example.com,Erin\n")
    import_contacts(workspace, base, now=day(2025, 1, 1))
    run(cli, workspace, "suppress", "add", "erin@example.com", "--reason", "unsubscribe")
    run(cli, workspace, "gdpr", "erase", "erin@example.com")
    import_contacts(workspace, base, now=day(2025, 2, 1))
    shown = json.loads(run(cli, workspace, "contact", "show", "erin@example.com", "--json"))
    assert shown["contact"]["email_status"] == "unsubscribed"


def test_import_keeps_the_first_reason_and_the_last_status_of_a_repeated_address(
    workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    with workspace.engine.begin() as connection:
        ann = add_contact(connection, email="ann@example.com", created_at=day(2024, 1, 1))
        bea = add_contact(connection, email="bea@example.com", created_at=day(2024, 1, 1))
    listing = write(
        tmp_path,
        "list.csv",
        """
        email,reason
        ann@example.com,manual
        ANN@example.com,unsubscribe
        bea@example.com,complaint
        bea@example.com,unsubscribe
        """,
    )
    result = json.loads(run(cli, workspace, "suppress", "import", str(listing), "--json"))
    assert (result["added"], result["already"]) == (2, 2)
    assert suppression_reasons(workspace)["email"] == ["manual", "complaint"]
    assert contact(workspace, ann)["email_status"] == "unsubscribed"
    assert contact(workspace, bea)["email_status"] == "unsubscribed"
    assert [action for action, _ in audit_actions(workspace, bea)] == [
        "status_change",
        "suppress",
        "status_change",
    ]
