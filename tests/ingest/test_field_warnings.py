"""A bad optional field keeps its contact or event: the field is left empty and reported
as a warning with its line, column and value; only identity (contacts) or an unusable
contact, type or time (events) rejects a row. On the exports of tests/corpus/fields/."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ingest.two_paths import (
    NOW,
    import_by_rows,
    read_rows,
    report_view,
    two_workspaces,
    without_ids,
)
from winback.cli import app
from winback.ingest import ImportReport, import_contacts, import_events
from winback.store.schema import contacts, events
from winback.workspace import Workspace

CORPUS = Path(__file__).parent.parent / "corpus" / "fields"


def stored(workspace: Workspace) -> dict[str, dict[str, Any]]:
    with workspace.engine.connect() as connection:
        found = connection.execute(select(contacts)).mappings().all()
    return {row["email"] or row["phone"]: dict(row) for row in found}


def warned(report: ImportReport) -> list[dict[str, str]]:
    with open(str(report.warnings_file), encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def warning_at(report: ImportReport, line: int, column: str) -> dict[str, str]:
    found = [row for row in warned(report) if (row["line"], row["column"]) == (str(line), column)]
    assert len(found) == 1, warned(report)
    return found[0]


def adds_up(report: ImportReport) -> bool:
    return report.read == report.imported + report.merged + report.rejected


@pytest.fixture
def mailchimp(sqlite_workspace: Workspace) -> ImportReport:
    path = CORPUS / "mailchimp_subscribed.csv"
    return import_contacts(sqlite_workspace, path, now=NOW)


@pytest.fixture
def brevo(workspace: Workspace) -> ImportReport:
    return import_contacts(workspace, CORPUS / "brevo_contacts.csv", now=NOW)


# Mailchimp


def test_mailchimp_keeps_every_person(mailchimp: ImportReport) -> None:
    assert (mailchimp.read, mailchimp.imported, mailchimp.rejected) == (5, 5, 0)
    assert adds_up(mailchimp)


def test_mailchimp_birthday_is_a_month_and_day_without_a_year(
    mailchimp: ImportReport, sqlite_workspace: Workspace
) -> None:
    camille = stored(sqlite_workspace)["camille.roux@example.com"]
    assert camille["birth_year"] is None
    assert camille["attributes"]["birthday"] == "--03-14"
    assert stored(sqlite_workspace)["hugo.martin@example.org"]["attributes"]["birthday"] == (
        "--12-01"
    )


def test_a_birthday_no_year_has_is_a_warning(
    mailchimp: ImportReport, sqlite_workspace: Workspace
) -> None:
    warning = warning_at(mailchimp, 5, "Birthday")
    assert warning["value"] == "02/30"
    assert warning["reason"].startswith("invalid birthday '02/30'")
    nathan = stored(sqlite_workspace)["nathan.petit@example.com"]
    assert "birthday" not in nathan["attributes"] and nathan["birth_year"] is None


def test_mailchimp_tags_lose_their_quotes(
    mailchimp: ImportReport, sqlite_workspace: Workspace
) -> None:
    found = stored(sqlite_workspace)
    assert found["camille.roux@example.com"]["tags"] == ["Clients", "VIP"]
    assert found["hugo.martin@example.org"]["tags"] == ["Clients"]
    assert found["nathan.petit@example.com"]["tags"] == ["Clients, Paris", "Newsletter"]


def test_a_short_phone_beside_an_email_is_a_warning(
    mailchimp: ImportReport, sqlite_workspace: Workspace
) -> None:
    warning = warning_at(mailchimp, 4, "Phone Number")
    assert (warning["value"], warning["reason"][:13]) == ("06 12 34", "invalid phone")
    lea = stored(sqlite_workspace)["lea.bernard@example.net"]
    assert (lea["phone"], lea["sms_status"], lea["email_status"]) == (None, "none", "subscribed")


# Brevo


def test_brevo_keeps_every_person(brevo: ImportReport) -> None:
    assert (brevo.read, brevo.imported, brevo.rejected) == (7, 7, 0)
    assert brevo.warnings == 5
    assert sum(brevo.warnings_by_reason.values()) == brevo.warnings


def test_brevo_short_phone(brevo: ImportReport, workspace: Workspace) -> None:
    assert warning_at(brevo, 3, "SMS")["value"] == "3361234"
    assert stored(workspace)["louis.girard@example.com"]["phone"] is None


def test_overseas_mobiles_read_in_their_region(brevo: ImportReport, workspace: Workspace) -> None:
    found = stored(workspace)
    assert found["manon.lefebvre@example.org"]["phone"] == "+590690123456"  # Guadeloupe
    assert found["jules.fontaine@example.net"]["phone"] == "+262692123456"  # Réunion
    assert not [row for row in warned(brevo) if row["line"] in ("4", "5")]


def test_a_mobile_without_its_leading_zero(brevo: ImportReport, workspace: Workspace) -> None:
    assert stored(workspace)["emma.chevalier@example.com"]["phone"] == "+33612345603"
    warning = warning_at(brevo, 6, "SMS")
    assert warning["reason"] == "no leading 0 in phone '612345603': read as +33612345603"


def test_a_signup_date_that_does_not_exist(brevo: ImportReport, workspace: Workspace) -> None:
    warning = warning_at(brevo, 6, "DATE_INSCRIPTION")
    assert warning["value"] == "31/02/2024"
    assert warning["reason"].startswith("unparseable date '31/02/2024': no such day")
    # Left empty: the contact is dated by the import, as when the file says nothing.
    assert stored(workspace)["emma.chevalier@example.com"]["created_at"] == NOW.replace(tzinfo=None)


def test_a_shared_phone_keeps_both_people(brevo: ImportReport, workspace: Workspace) -> None:
    found = stored(workspace)
    assert found["ines.moreau@example.com"]["phone"] == "+33612345602"
    lucas = found["lucas.blanc@example.org"]
    assert (lucas["phone"], lucas["sms_status"]) == (None, "none")
    warning = warning_at(brevo, 7, "SMS")
    assert (warning["value"], warning["reason"]) == (
        "33612345602",
        "phone already belongs to another contact",
    )


def test_an_invalid_email_beside_a_valid_phone(brevo: ImportReport, workspace: Workspace) -> None:
    zoe = stored(workspace)["+33612345604"]
    assert (zoe["email"], zoe["first_name"], zoe["email_status"]) == (None, "Zoé", "none")
    assert warning_at(brevo, 8, "EMAIL")["value"] == "pas-une-adresse"


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Workspace]]:
    def make(folder: Path) -> Workspace:
        workspace = Workspace.init(folder, "ecommerce")
        import_contacts(workspace, CORPUS / "mailchimp_subscribed.csv", now=NOW)
        return workspace

    yield from two_workspaces(tmp_path, monkeypatch, make)


@pytest.mark.parametrize("name", ["mailchimp_subscribed.csv", "brevo_contacts.csv"])
def test_contacts_blocks_and_rows_give_the_same_warnings(
    pair: tuple[Workspace, Workspace], tmp_path: Path, name: str
) -> None:
    by_blocks, by_rows = pair
    path = tmp_path / name  # a name of its own: its contacts keep it as their source
    shutil.copy(CORPUS / name, path)
    first = report_view(import_contacts(by_blocks, path, now=NOW))
    second = report_view(import_by_rows(by_rows, path, "contacts"))
    assert first == second
    assert first["warnings"] > 0
    assert without_ids(stored(by_blocks).values()) == without_ids(stored(by_rows).values())


# Events


def imported_events(workspace: Workspace) -> list[dict[str, Any]]:
    with workspace.engine.connect() as connection:
        found = connection.execute(select(events).order_by(events.c.occurred_at))
        return [dict(row) for row in found.mappings()]


def test_events_keep_a_bad_optional_field_and_reject_a_bad_purchase(
    sqlite_workspace: Workspace,
) -> None:
    import_contacts(sqlite_workspace, CORPUS / "mailchimp_subscribed.csv", now=NOW)
    report = import_events(sqlite_workspace, CORPUS / "events_mixed.csv", now=NOW)
    assert (report.read, report.imported, report.rejected) == (4, 3, 1)
    assert report.by_reason == {"unparseable amount": 1}
    assert read_rows(report.quarantine)[1][:2] == ["3", "unparseable amount 'douze euros'"]
    assert [(row["line"], row["column"], row["value"]) for row in warned(report)] == [
        ("2", "amount", "n/a"),
        ("4", "channel", "pigeon"),
    ]
    found = imported_events(sqlite_workspace)
    assert [(row["type"], row["channel"], row["amount"]) for row in found] == [
        ("open", "email", None),
        ("click", "email", None),
        ("purchase", "web", 12.5),
    ]


def test_events_blocks_and_rows_give_the_same_warnings(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    by_blocks, by_rows = pair
    path = CORPUS / "events_mixed.csv"
    first = report_view(import_events(by_blocks, path, now=NOW))
    assert first == report_view(import_by_rows(by_rows, path, "events"))
    assert first["warnings"] == 2
    strip = [{k: v for k, v in row.items() if k != "id"} for row in imported_events(by_blocks)]
    assert strip == [
        {k: v for k, v in row.items() if k != "id"} for row in imported_events(by_rows)
    ]


# What a user sees


def test_the_summary_and_json_count_warnings(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    args = ["import", "contacts", str(CORPUS / "brevo_contacts.csv")]
    args += ["-w", str(sqlite_workspace.path), "--now", "2026-06-01T00:00:00Z"]
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["read"], report["imported"], report["rejected"], report["warnings"]) == (
        7,
        7,
        0,
        5,
    )
    assert report["warnings_by_reason"]["phone already belongs to another contact"] == 1
    assert report["warnings_file"].endswith(".warnings.csv")
    text = cli.invoke(app, args).output
    assert "warnings (rows kept)" in text and "invalid phone" in text
    assert "Fields left empty, with their line, column and value" in text


def test_map_to_nothing_ignores_a_column(
    sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    path = tmp_path / "list.csv"
    path.write_text("email,Birthday,Secret\nann@example.com,03/14,s3cr3t\n", encoding="utf-8")
    args = ["import", "contacts", str(path), "-w", str(sqlite_workspace.path), "--json"]
    result = cli.invoke(app, [*args, "--map", "Birthday=", "--map", "Secret="])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["warnings"] == 0
    ann = stored(sqlite_workspace)["ann@example.com"]
    assert (ann["birth_year"], ann["attributes"]) == (None, None)


def test_a_formula_in_a_warned_value_stays_text(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "list.csv"
    formula = '=HYPERLINK("http://example.net","x")'
    path.write_text(
        'email,created_at\nann@example.com,"=HYPERLINK(""http://example.net"",""x"")"\n'
    )
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert report.warnings == 1
    assert warned(report)[0]["value"] == "'" + formula


def test_a_null_date_of_year_one_is_a_warning(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    """Some exports write a missing date as 0001-01-01; east of UTC it is before year 1."""
    path = tmp_path / "list.csv"
    path.write_text("email,created_at\nann@example.com,0001-01-01T00:00:00+01:00\n")
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert (report.imported, report.warnings) == (1, 1)
    assert warned(report)[0]["reason"].startswith("date out of range")
