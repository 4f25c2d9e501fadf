"""Importing contacts as users' files come: any dialect, encoding and column naming,
with every row imported, merged or quarantined with a reason."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from winback.cli import app
from winback.clock import utcnow
from winback.errors import InputFileError
from winback.ingest import ImportReport, import_contacts
from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def rows(workspace: Workspace) -> dict[str, dict[str, Any]]:
    with workspace.engine.connect() as connection:
        found = connection.execute(select(contacts)).mappings().all()
    return {row["email"] or row["phone"]: dict(row) for row in found}


def quarantined(report: ImportReport) -> list[dict[str, str]]:
    assert report.quarantine is not None
    with open(report.quarantine, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def warnings_of(report: ImportReport) -> list[dict[str, str]]:
    assert report.warnings_file is not None
    with open(report.warnings_file, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def assert_adds_up(report: ImportReport) -> None:
    assert report.read == report.imported + report.merged + report.rejected
    assert sum(report.by_reason.values()) == report.rejected


def test_a_french_excel_export(workspace: Workspace, tmp_path: Path) -> None:
    """Semicolons, cp1252 accents, CRLF, French headers, dd/mm/yyyy dates."""
    text = (
        "Courriel;Prénom;Nom;Téléphone;Date_inscription;Ville\r\n"
        "helene@example.com;Hélène;Lefèvre;06 12 34 56 78;31/01/2024;Besançon\r\n"
        "francois@example.com;François;Gaël;;15/02/2023;Orléans\r\n"
    )
    report = import_contacts(
        workspace, write(tmp_path / "export.csv", text, "cp1252"), now=utcnow()
    )
    assert (report.read, report.imported, report.rejected) == (2, 2, 0)
    found = rows(workspace)
    helene = found["helene@example.com"]
    assert helene["first_name"] == "Hélène"
    assert helene["city"] == "Besançon"
    assert helene["phone"] == "+33612345678"
    assert helene["created_at"].date().isoformat() == "2024-01-31"
    assert helene["email_status"] == "subscribed"
    assert found["francois@example.com"]["sms_status"] == "none"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_every_common_delimiter(workspace: Workspace, tmp_path: Path, delimiter: str) -> None:
    lines = ["Email Address", "First Name", "Amount spent"]
    body = [["a@example.com", "Ann", "1,5"], ["b@example.com", "Bob", "2,5"]]
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter).writerows([lines, *body])
    report = import_contacts(
        workspace, write(tmp_path / "list.txt", buffer.getvalue()), now=utcnow()
    )
    assert report.imported == 2, report.by_reason
    assert rows(workspace)["b@example.com"]["first_name"] == "Bob"
    assert rows(workspace)["b@example.com"]["attributes"] == {"Amount spent": "2,5"}


def test_a_comma_inside_values_does_not_fool_the_delimiter_guess(
    workspace: Workspace, tmp_path: Path
) -> None:
    text = "email;first_name;tags\nann@example.com;Ann;a,b,c\nbob@example.com;Bob;c,d,e\n"
    report = import_contacts(workspace, write(tmp_path / "tags.csv", text), now=utcnow())
    assert report.imported == 2
    assert rows(workspace)["ann@example.com"]["tags"] == ["a", "b", "c"]


def test_bom_and_quoted_newlines(workspace: Workspace, tmp_path: Path) -> None:
    text = (
        '\ufeffemail,first_name,city\nann@example.com,"Ann\nMarie",Paris\n'
        "bob@example.com,Bob,Lyon\n"
    )
    report = import_contacts(workspace, write(tmp_path / "bom.csv", text), now=utcnow())
    assert report.imported == 2
    assert rows(workspace)["ann@example.com"]["first_name"] == "Ann\nMarie"


def test_duplicates_in_case_and_spaces_merge(workspace: Workspace, tmp_path: Path) -> None:
    text = (
        "email,first_name,city,tags\n"
        "  Ann.Lee@Example.COM ,Ann,,vip\n"
        "ann.lee@example.com,,Paris,new\n"
    )
    report = import_contacts(workspace, write(tmp_path / "dupes.csv", text), now=utcnow())
    assert (report.read, report.imported, report.merged) == (2, 1, 1)
    ann = rows(workspace)["ann.lee@example.com"]
    assert (ann["first_name"], ann["city"], ann["tags"]) == ("Ann", "Paris", ["new", "vip"])


def test_invalid_rows_are_quarantined_with_line_and_reason(
    workspace: Workspace, tmp_path: Path
) -> None:
    text = (
        "email,phone,created_at\n"
        "good@example.com,,2024-01-01\n"
        "not-an-email,,2024-01-01\n"
        "ok@example.com,,31/02/2024\n"
        "future@example.com,,2099-01-01\n"
        ",,2024-01-01\n"
        ",12,2024-01-01\n"
    )
    report = import_contacts(workspace, write(tmp_path / "bad.csv", text), now=utcnow())
    assert_adds_up(report)
    assert (report.read, report.imported, report.rejected) == (6, 3, 3)
    assert report.by_reason == {
        "invalid email": 1,
        "no email and no phone": 1,
        "invalid phone": 1,
    }
    lines = {row["line"]: row for row in quarantined(report)}
    assert sorted(lines) == ["3", "6", "7"]
    assert lines["3"]["email"] == "not-an-email"
    assert report.quarantine is not None
    assert Path(report.quarantine).parent == workspace.quarantine_dir
    assert Path(report.quarantine).name.startswith("bad.csv.")
    # A bad date is no reason to lose the person: the field is left empty, with a warning.
    assert report.warnings_by_reason == {"unparseable date": 1, "date in the future": 1}
    warned = warnings_of(report)
    assert [(row["line"], row["column"], row["value"]) for row in warned] == [
        ("4", "created_at", "31/02/2024"),
        ("5", "created_at", "2099-01-01"),
    ]
    assert warned[0]["reason"].startswith("unparseable date '31/02/2024'")
    assert report.warnings_file is not None
    assert report.quarantine is not None
    assert Path(report.warnings_file).name == Path(report.quarantine).name[:-4] + ".warnings.csv"


def test_a_missing_required_column_fails_at_once(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "names.csv", "first_name,last_name\nAnn,Lee\n")
    with pytest.raises(InputFileError) as error:
        import_contacts(workspace, path, now=utcnow())
    message = str(error.value)
    assert "no email or phone column" in message
    assert "'first_name', 'last_name'" in message
    assert rows(workspace) == {}


def test_empty_header_only_binary(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="empty"):
        import_contacts(workspace, write(tmp_path / "empty.csv", ""), now=utcnow())
    report = import_contacts(
        workspace, write(tmp_path / "header.csv", "email,name\n"), now=utcnow()
    )
    assert (report.read, report.imported, report.rejected, report.quarantine) == (0, 0, 0, None)
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40)
    with pytest.raises(InputFileError, match="binary"):
        import_contacts(workspace, binary, now=utcnow())


def test_a_ten_megabyte_field_is_left_empty_with_a_warning(
    workspace: Workspace, tmp_path: Path
) -> None:
    huge = "x" * (10 * 1024 * 1024)
    text = f"email,notes\nann@example.com,short\nbob@example.com,{huge}\ncid@example.com,ok\n"
    report = import_contacts(workspace, write(tmp_path / "huge.csv", text), now=utcnow())
    assert (report.imported, report.rejected, report.warnings) == (3, 0, 1)
    assert report.warnings_by_reason == {"field too long": 1}
    warned = warnings_of(report)[0]
    assert (warned["line"], warned["column"], warned["value"]) == ("3", "notes", "x" * 200 + "…")
    assert rows(workspace)["bob@example.com"]["attributes"] is None


def test_a_refusal_is_never_turned_back(workspace: Workspace, tmp_path: Path) -> None:
    first = write(tmp_path / "unsub.csv", "email\nann@example.com\nbob@example.com\n")
    import_contacts(workspace, first, now=utcnow(), status=None)
    import_contacts(
        workspace,
        write(tmp_path / "mc_unsubscribed.csv", "Email Address\nann@example.com\n"),
        now=utcnow(),
        status="unsubscribed",  # type: ignore[arg-type]
    )
    again = write(tmp_path / "again.csv", "email,status\nann@example.com,subscribed\n")
    report = import_contacts(workspace, again, now=utcnow())
    assert report.merged == 1
    found = rows(workspace)
    assert found["ann@example.com"]["email_status"] == "unsubscribed"
    assert found["bob@example.com"]["email_status"] == "subscribed"
    with workspace.engine.connect() as connection:
        decisions = connection.execute(select(audit.c.action, audit.c.reason)).all()
    # The status change, and the address on the suppression list: nothing more.
    assert sorted(decisions) == [
        ("status_change", "email unsubscribed"),
        ("suppress", "unsubscribe"),
    ]


def test_brevo_blacklist_columns(workspace: Workspace, tmp_path: Path) -> None:
    text = (
        "EMAIL;SMS;EMAIL_BLACKLISTED;SMS_BLACKLISTED\n"
        "ann@example.com;+33612345678;true;false\n"
        "bob@example.com;+33612345679;false;true\n"
    )
    import_contacts(workspace, write(tmp_path / "brevo.csv", text), now=utcnow())
    found = rows(workspace)
    assert (found["ann@example.com"]["email_status"], found["ann@example.com"]["sms_status"]) == (
        "unsubscribed",
        "subscribed",
    )
    assert found["bob@example.com"]["sms_status"] == "unsubscribed"


def test_default_consent_none_from_config(workspace: Workspace, tmp_path: Path) -> None:
    path = workspace.path / "winback.toml"
    path.write_text(
        path.read_text().replace('default_consent = "subscribed"', 'default_consent = "none"')
    )
    ws = Workspace.open(workspace.path)
    import_contacts(ws, write(tmp_path / "plain.csv", "email\nann@example.com\n"), now=utcnow())
    assert rows(ws)["ann@example.com"]["email_status"] == "none"
    ws.close()


def test_phone_only_contacts_dedupe_on_phone(workspace: Workspace, tmp_path: Path) -> None:
    text = "mobile,prénom\n06 12 34 56 78,Ann\n+33 6 12 34 56 78,Annie\n"
    report = import_contacts(workspace, write(tmp_path / "sms.csv", text), now=utcnow())
    assert (report.imported, report.merged) == (1, 1)
    assert rows(workspace)["+33612345678"]["first_name"] == "Annie"


def test_a_shared_phone_stays_with_its_owner(workspace: Workspace, tmp_path: Path) -> None:
    text = "email,phone\nann@example.com,0612345678\nbob@example.com,0612345678\n"
    report = import_contacts(workspace, write(tmp_path / "shared.csv", text), now=utcnow())
    assert (report.imported, report.rejected, report.warnings) == (2, 0, 1)
    assert report.warnings_by_reason == {"phone already belongs to another contact": 1}
    found = rows(workspace)
    assert (found["ann@example.com"]["phone"], found["bob@example.com"]["phone"]) == (
        "+33612345678",
        None,
    )
    assert found["bob@example.com"]["sms_status"] == "none"


def test_map_option_and_reimport_adds_nothing(
    workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    path = write(tmp_path / "odd.csv", "Adresse électronique,Quand\nann@example.com,2024-05-01\n")
    args = ["import", "contacts", str(path), "-w", str(workspace.path), "--json"]
    args += ["--map", "Adresse électronique=email", "--map", "Quand=created_at"]
    first = json.loads(cli.invoke(app, args).output)
    second = json.loads(cli.invoke(app, args).output)
    assert (first["imported"], second["imported"], second["merged"]) == (1, 0, 1)
    assert set(first) >= {"read", "imported", "merged", "rejected", "by_reason"}
    assert rows(workspace)["ann@example.com"]["created_at"].date().isoformat() == "2024-05-01"


def test_map_to_an_unknown_field_lists_the_fields(workspace: Workspace, tmp_path: Path) -> None:
    path = write(tmp_path / "odd.csv", "a\nann@example.com\n")
    with pytest.raises(InputFileError, match=r"unknown field 'mail' \(known: .*email"):
        import_contacts(workspace, path, now=utcnow(), mapping={"a": "mail"})


def test_jsonl_and_parquet(workspace: Workspace, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = tmp_path / "contacts.jsonl"
    jsonl.write_text(
        '{"email": "ann@example.com", "tags": ["a", "b"], "birth_year": 1980}\n'
        "not json\n"
        '{"email": "bob@example.com", "country": "fr"}\n'
    )
    report = import_contacts(workspace, jsonl, now=utcnow())
    assert (report.imported, report.rejected) == (2, 1)
    assert quarantined(report)[0]["line"] == "2"
    parquet = tmp_path / "contacts.parquet"
    pq.write_table(pa.table({"Email": ["cid@example.com", "bad"], "Pays": ["BE", "FR"]}), parquet)
    report = import_contacts(workspace, parquet, now=utcnow())
    assert (report.imported, report.rejected) == (1, 1)
    found = rows(workspace)
    assert found["ann@example.com"]["tags"] == ["a", "b"]
    assert found["bob@example.com"]["country"] == "FR"
    assert found["cid@example.com"]["country"] == "BE"


def test_a_suppressed_address_comes_back_suppressed(workspace: Workspace, tmp_path: Path) -> None:
    with workspace.engine.begin() as connection:
        connection.execute(
            suppressions.insert(),
            [
                {
                    "channel": "email",
                    "address_hash": workspace.keyed_hash("gone@example.com"),
                    "reason": "complaint",
                    "created_at": datetime(2024, 1, 1),
                }
            ],
        )
    text = "email\nGone@Example.com\nnew@example.com\n"
    import_contacts(workspace, write(tmp_path / "again.csv", text), now=utcnow())
    found = rows(workspace)
    assert found["gone@example.com"]["email_status"] == "complained"
    assert found["new@example.com"]["email_status"] == "subscribed"
