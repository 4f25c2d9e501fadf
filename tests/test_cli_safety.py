"""What a contact, a file or a mistyped ``--out`` can do to a user's terminal, spreadsheet
and workspace: nothing. Every break of issue 15 (items 6, 7, 8) has its test here."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TextIO

import pytest
from sqlalchemy import insert, select
from typer.testing import CliRunner

from tests.builders import add_contact, day
from winback.cli import app
from winback.errors import StoreError
from winback.store.schema import contacts, offers
from winback.workspace import ENV_DATABASE_URL, Workspace

NOW = "2025-06-30"


def invoke(cli: CliRunner, ws: Workspace, *args: str) -> tuple[int, str]:
    result = cli.invoke(app, [*args, "-w", str(ws.path)])
    return result.exit_code, result.output


def ok(cli: CliRunner, ws: Workspace, *args: str) -> str:
    code, output = invoke(cli, ws, *args)
    assert code == 0, output
    return output


def _database(ws: Workspace) -> Path:
    return ws.path / "winback.db"


def _suppressed(cli: CliRunner, ws: Workspace) -> None:
    with ws.engine.begin() as connection:
        add_contact(
            connection, email="ines@example.com", phone="+33612345678", created_at=day(2024, 1, 1)
        )
    ok(cli, ws, "suppress", "add", "ines@example.com", "--now", NOW)
    ok(cli, ws, "suppress", "add", "+33612345678", "--now", NOW)


# --- item 6: --out never destroys the workspace -----------------------------------------


@pytest.mark.parametrize(
    "target",
    ["winback.db", "winback.db-wal", "winback.db-shm", "secret.key", "winback.toml"],
)
def test_suppress_export_refuses_the_workspace_own_files(
    sqlite_workspace: Workspace, cli: CliRunner, target: str
) -> None:
    ws = sqlite_workspace
    _suppressed(cli, ws)
    before = {p.name: p.read_bytes() for p in ws.path.iterdir() if p.is_file()}
    code, output = invoke(cli, ws, "suppress", "export", "--out", str(ws.path / target))
    assert code == 2
    assert "refusing to write there" in output
    assert target in output
    for name in ("winback.db", "secret.key", "winback.toml"):
        assert (ws.path / name).read_bytes() == before[name]
    listed = json.loads(ok(cli, ws, "suppress", "list", "--json"))
    assert len(listed) == 2  # the database still holds the list


def test_relative_paths_and_symlinks_are_resolved(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = sqlite_workspace
    _suppressed(cli, ws)
    secret = (ws.path / "secret.key").read_bytes()
    monkeypatch.chdir(ws.path / "..")
    code, output = invoke(cli, ws, "gdpr", "export", "ines@example.com", "--out", "ws/secret.key")
    assert code == 2, output
    assert "secret.key" in output
    link = tmp_path / "report.json"
    link.symlink_to(ws.path / "secret.key")
    code, output = invoke(cli, ws, "gdpr", "export", "ines@example.com", "--out", str(link))
    assert code == 2, output
    hard = tmp_path / "copy.db"
    os.link(_database(ws), hard)
    code, output = invoke(cli, ws, "offers", "export", "--out", str(hard))
    assert code == 2, output
    code, output = invoke(cli, ws, "suppress", "export", "--out", "ws/./winback.db")
    assert code == 2, output
    assert (ws.path / "secret.key").read_bytes() == secret
    assert len(json.loads(ok(cli, ws, "suppress", "list", "--json"))) == 2


def test_a_database_outside_the_workspace_is_protected_too(
    tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "data" / "crm.sqlite"
    elsewhere.parent.mkdir()
    monkeypatch.setenv(ENV_DATABASE_URL, f"sqlite:///{elsewhere}")
    ws = Workspace.init(tmp_path / "ws", "ecommerce")
    try:
        _suppressed(cli, ws)
        for target in (elsewhere, Path(f"{elsewhere}-wal")):
            code, output = invoke(cli, ws, "suppress", "export", "--out", str(target))
            assert code == 2, output
        assert len(json.loads(ok(cli, ws, "suppress", "list", "--json"))) == 2
    finally:
        ws.close()


def test_segment_export_refuses_the_database(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    ws = sqlite_workspace
    _suppressed(cli, ws)
    ok(cli, ws, "score", "--now", NOW)
    ok(cli, ws, "segment", "save", "everyone", "--where", "email is not empty", "--now", NOW)
    code, output = invoke(cli, ws, "segment", "export", "everyone", "--csv", str(_database(ws)))
    assert code == 2, output
    assert json.loads(ok(cli, ws, "segment", "list", "--json"))[0]["name"] == "everyone"


def test_an_export_to_a_missing_folder_is_a_clear_error(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    code, output = invoke(
        cli, sqlite_workspace, "suppress", "export", "--out", str(tmp_path / "no" / "x.csv")
    )
    assert code == 2
    assert "does not exist" in output
    code, output = invoke(cli, sqlite_workspace, "suppress", "export", "--out", str(tmp_path))
    assert code == 2
    assert "is a folder" in output


def test_an_export_that_fails_midway_leaves_the_old_file_whole(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(workspace: Workspace, out: TextIO, **filters: str | None) -> int:
        out.write("channel,address\nemail,half")
        raise StoreError("the database went away")

    monkeypatch.setattr("winback.compliance.export_suppressions", broken)
    out = tmp_path / "list.csv"
    out.write_text("channel,address\nemail,ann@example.com\n", encoding="utf-8")
    code, output = invoke(cli, sqlite_workspace, "suppress", "export", "--out", str(out))
    assert code == StoreError.exit_code
    assert "the database went away" in output
    assert out.read_text(encoding="utf-8") == "channel,address\nemail,ann@example.com\n"
    assert [p.name for p in tmp_path.iterdir()] == ["list.csv", "ws"]


# --- item 7: what a contact wrote is printed as text ------------------------------------


def _show_ann(cli: CliRunner, ws: Workspace, first_name: str, *options: str) -> str:
    """``contact show`` of a contact whose first name is ``first_name``."""
    with ws.engine.begin() as connection:
        add_contact(
            connection, email="ann@example.com", created_at=day(2024, 1, 1), first_name=first_name
        )
    return ok(cli, ws, "contact", "show", "ann@example.com", *options)


@pytest.mark.parametrize(
    "name",
    [
        "[link=https://evil.example]x[/link]",
        "[/bold] x",
        ":warning: [red]Ann[/red]",
    ],
)
def test_contact_show_prints_markup_as_text(
    sqlite_workspace: Workspace, cli: CliRunner, name: str
) -> None:
    ws = sqlite_workspace
    output = _show_ann(cli, ws, name)
    assert name in output


def test_control_sequences_never_reach_the_terminal(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    ws = sqlite_workspace
    name = "Ann\x1b]8;;https://evil.example\x07click\x1b]8;;\x07\x1b[2J\x9b31m\u202eevil"
    output = _show_ann(cli, ws, name)
    for byte in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert byte not in output
    assert "\\x1b]8;;https://evil.example\\x07click" in output  # shown, escaped


def test_a_segment_named_like_markup_is_listed(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    ws = sqlite_workspace
    ok(cli, ws, "score", "--now", NOW)
    assert "[/x]" in ok(
        cli, ws, "segment", "save", "[/x]", "--where", "stage=dormant", "--now", NOW
    )
    ok(cli, ws, "segment", "save", "quiet", "--where", "stage=dormant", "--now", NOW)
    listed = ok(cli, ws, "segment", "list")
    assert "[/x]" in listed
    assert "quiet" in listed
    assert "[/x]" in ok(cli, ws, "segment", "delete", "[/x]")


def test_the_audit_shows_a_note_as_text(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    ws = sqlite_workspace
    _suppressed(cli, ws)
    ok(cli, ws, "suppress", "remove", "+33612345678", "--note", "[/b]ok", "--now", NOW)
    assert "+33612345678" not in ok(cli, ws, "suppress", "list")
    assert "[/b]ok" in ok(cli, ws, "audit")


def test_an_error_naming_a_file_prints_it_as_text(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    missing = tmp_path / "no\x1b[2Jfile.csv"
    code, output = invoke(cli, sqlite_workspace, "import", "contacts", str(missing))
    assert code == 3
    assert "\x1b" not in output
    assert "no\\x1b[2Jfile.csv" in output


def test_an_import_summary_names_the_file_as_text(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("[red]people.csv").write_text(
        "email,first_name\nann@example.com,Ann\nnot-an-address,Bob\n", encoding="utf-8"
    )
    output = ok(cli, sqlite_workspace, "import", "contacts", "[red]people.csv", "--now", NOW)
    assert "[red]people.csv" in output


# --- item 8: CSV cells are never formulas ----------------------------------------------


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_segment_export_neutralises_formulas(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as connection:
        add_contact(
            connection,
            email="eve@example.com",
            created_at=day(2024, 1, 1),
            first_name='=HYPERLINK("https://evil.example","Eve")',
            last_name="@SUM(1+1)",
            country="-2+3",
        )
        add_contact(
            connection, email="bob@example.net", created_at=day(2024, 1, 1), first_name="Bob"
        )
    ok(cli, ws, "score", "--now", NOW)
    ok(cli, ws, "segment", "save", "all", "--where", "email is not empty", "--now", NOW)
    out = tmp_path / "all.csv"
    ok(cli, ws, "segment", "export", "all", "--csv", str(out), "--now", NOW)
    eve, bob = _rows(out)
    assert eve["first_name"] == '\'=HYPERLINK("https://evil.example","Eve")'
    assert eve["last_name"] == "'@SUM(1+1)"
    assert eve["country"] == "'-2+3"
    assert bob["first_name"] == "Bob"


def test_suppress_export_quotes_a_phone_number(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    _suppressed(cli, ws)
    out = tmp_path / "suppressed.csv"
    ok(cli, ws, "suppress", "export", "--out", str(out))
    addresses = [row["address"] for row in _rows(out)]
    # OWASP: a cell starting with + gets its '; spreadsheets show +33612345678 as text.
    assert addresses == ["ines@example.com", "'+33612345678"]


def test_offers_export_neutralises_formulas(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as connection:
        ann = add_contact(connection, email="ann@example.com", created_at=day(2024, 1, 1))
        connection.execute(
            insert(offers),
            {
                "code": "=1+1",
                "contact_id": ann,
                "journey": "+winback",
                "created_at": day(2025, 1, 1).replace(tzinfo=None),
                "assigned_at": day(2025, 1, 1).replace(tzinfo=None),
            },
        )
    out = tmp_path / "codes.csv"
    ok(cli, ws, "offers", "export", "--out", str(out))
    (row,) = _rows(out)
    assert row["code"] == "'=1+1"
    assert row["journey"] == "'+winback"


def test_quarantine_file_neutralises_formulas(
    sqlite_workspace: Workspace, cli: CliRunner, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    source = tmp_path / "contacts.csv"
    source.write_text(
        'email,first_name\n=cmd|"/c calc"!A1,Mallory\n"@SUM(A1)",\tTab\nann@example.com,Ann\n',
        encoding="utf-8",
    )
    report = json.loads(ok(cli, ws, "import", "contacts", str(source), "--json", "--now", NOW))
    assert report["rejected"] == 2
    rows = _rows(Path(report["quarantine"]))
    assert rows[0]["email"] == '\'=cmd|"/c calc"!A1'
    assert rows[1]["email"] == "'@SUM(A1)"
    with ws.engine.connect() as connection:
        assert connection.execute(select(contacts.c.email)).scalars().all() == ["ann@example.com"]


def test_json_output_escapes_what_a_terminal_acts_on(
    sqlite_workspace: Workspace, cli: CliRunner
) -> None:
    ws = sqlite_workspace
    name = "Ann\x9b2J\u202eevil\x1b[2J"
    output = _show_ann(cli, ws, name, "--json")
    for char in ("\x9b", "\u202e", "\x1b"):
        assert char not in output
    assert json.loads(output)["contact"]["first_name"] == name  # the same data for a script
