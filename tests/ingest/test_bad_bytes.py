"""Bad bytes never crash an import: undefined cp1252 bytes, mixed encodings, random bytes,
NUL bytes, deep JSON, thousands of columns and huge fields each give a clear message or
quarantined rows (and warnings), never a traceback."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner, Result

import winback
from tests.ingest.two_paths import NOW, read_rows
from winback.cli import app
from winback.errors import InputFileError
from winback.ingest import ImportReport, import_contacts, import_events
from winback.store.schema import contacts
from winback.workspace import Workspace

CORPUS = Path(__file__).parent.parent / "corpus" / "fields"
# The winback under test, for the subprocess.
SOURCE = Path(winback.__file__).parent.parent


def stored(workspace: Workspace) -> dict[str, dict[str, Any]]:
    with workspace.engine.connect() as connection:
        found = connection.execute(select(contacts)).mappings().all()
    return {row["email"]: dict(row) for row in found}


def warnings_of(report: ImportReport) -> list[list[str]]:
    return read_rows(report.warnings_file)[1:]


def run_cli(cli: CliRunner, workspace: Workspace, path: Path, kind: str = "contacts") -> Result:
    args = ["import", kind, str(path), "-w", str(workspace.path), "--now", "2026-06-01T00:00:00Z"]
    result = cli.invoke(app, args)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_an_undefined_cp1252_byte(sqlite_workspace: Workspace, cli: CliRunner) -> None:
    path = CORPUS / "cp1252_undefined.csv"
    assert run_cli(cli, sqlite_workspace, path).exit_code == 0
    found = stored(sqlite_workspace)
    assert sorted(found) == [
        "anne.dupont@example.com",
        "marc.leroy@example.com",
        "sophie.henry@example.com",
    ]
    assert found["marc.leroy@example.com"]["first_name"] == "Marc\ufffd"
    assert found["marc.leroy@example.com"]["city"] == "Orléans"
    assert found["anne.dupont@example.com"]["city"] == "Besançon"
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert warnings_of(report) == [
        ["3", "", "", "bytes undefined in cp1252 (the file's encoding) read as U+FFFD"]
    ]


def test_mixed_encodings_are_read_line_by_line(sqlite_workspace: Workspace) -> None:
    report = import_contacts(sqlite_workspace, CORPUS / "mixed_encoding.csv", now=NOW)
    assert (report.read, report.imported, report.rejected) == (4, 4, 0)
    cities = {email: row["city"] for email, row in stored(sqlite_workspace).items()}
    assert cities == {
        "anne.dupont@example.com": "Besançon",
        "marc.leroy@example.com": "Orléans",
        "sophie.henry@example.com": "Nîmes",
        "paul.roche@example.com": "Sète",
    }
    assert [row[0] for row in warnings_of(report)] == ["4", "5"]
    assert warnings_of(report)[0][3] == "line not UTF-8 like the rest: read as cp1252"


def test_mixed_encodings_past_the_first_megabyte(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """The cp1252 line comes after a megabyte of UTF-8: Arrow's blocks, then the rest."""
    lines = [b"email,first_name,city"]
    lines += [f"p{at}@example.com,Élodie,Besançon".encode() for at in range(40_000)]
    lines += [b"late@example.com,Ana\xefs,N\xeemes"]
    path = tmp_path / "late.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert (report.imported, report.rejected) == (40_001, 0)
    found = stored(sqlite_workspace)
    assert (found["late@example.com"]["first_name"], found["late@example.com"]["city"]) == (
        "Anaïs",
        "Nîmes",
    )
    assert found["p7@example.com"]["city"] == "Besançon"
    assert [row[0] for row in warnings_of(report)] == ["40002"]


def test_random_bytes_without_nul_are_refused_as_binary(
    sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    noise = random.Random(14).randbytes(300_000).replace(b"\x00", b"\x01")
    path = tmp_path / "contacts.csv"
    path.write_bytes(noise)
    result = run_cli(cli, sqlite_workspace, path)
    assert result.exit_code == 3
    assert "is a binary file" in result.output and "control characters" in result.output


def test_random_bytes_after_a_good_header(
    sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    """Garbage past the first 256 KB: each line is a row, rejected or imported, none lost."""
    good = b"email,first_name\n" + b"".join(
        f"p{at}@example.com,Ann\n".encode() for at in range(12_000)
    )
    noise = random.Random(15).randbytes(20_000).replace(b"\x00", b"\x01")
    path = tmp_path / "contacts.csv"
    path.write_bytes(good + noise + b"\nlast@example.com,Zoe\n")
    assert run_cli(cli, sqlite_workspace, path).exit_code == 0
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert report.read == report.imported + report.merged + report.rejected
    assert report.rejected > 0 and "last@example.com" in stored(sqlite_workspace)


def test_a_nul_byte_in_a_field(workspace: Workspace, tmp_path: Path, cli: CliRunner) -> None:
    """Past the first 256 KB (a NUL there makes the file binary); PostgreSQL cannot store
    it in text, so the field is left empty with a warning."""
    rows = [f"p{at}@example.com,Ann,Paris" for at in range(12_000)]
    rows.append("nul@example.com,An\x00n,Lyon")
    path = tmp_path / "contacts.csv"
    path.write_text("email,first_name,city\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert run_cli(cli, workspace, path).exit_code == 0
    found = stored(workspace)["nul@example.com"]
    assert (found["first_name"], found["city"]) == (None, "Lyon")
    report = import_contacts(workspace, path, now=NOW)
    assert warnings_of(report) == [["12002", "first_name", "An\x00n", "NUL character in the field"]]


def test_a_nul_byte_near_the_start_is_a_binary_file(
    sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"email\nann@example.com\x00\n")
    result = run_cli(cli, sqlite_workspace, path)
    assert result.exit_code == 3 and "NUL bytes" in result.output


def test_json_nested_too_deep(sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner) -> None:
    path = tmp_path / "contacts.jsonl"
    deep = '{"email": "deep@example.com", "notes": ' + "[" * 100_000 + "]" * 100_000 + "}"
    good = json.dumps({"email": "ann@example.com"})
    path.write_text(f"{good}\n{deep}\n", encoding="utf-8")
    assert run_cli(cli, sqlite_workspace, path).exit_code == 0
    report = import_contacts(sqlite_workspace, path, now=NOW)
    assert (report.read, report.merged, report.rejected) == (2, 1, 1)
    assert report.by_reason == {"JSON nested deeper than 32 levels": 1}
    assert sorted(stored(sqlite_workspace)) == ["ann@example.com"]


def test_json_nested_deeper_than_the_limit(sqlite_workspace: Workspace) -> None:
    """Forty levels: json reads it, the importer refuses it before anything stores it."""
    report = import_contacts(sqlite_workspace, CORPUS / "nested.jsonl", now=NOW)
    assert (report.read, report.imported, report.rejected) == (3, 2, 1)
    assert read_rows(report.quarantine)[1][:2] == ["2", "JSON nested deeper than 32 levels"]


def test_ten_thousand_columns(sqlite_workspace: Workspace, tmp_path: Path, cli: CliRunner) -> None:
    header = ["email", *(f"col{at}" for at in range(9_999))]
    rows = [[f"p{row}@example.com", *(str(at) for at in range(9_999))] for row in range(3)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    assert run_cli(cli, sqlite_workspace, path).exit_code == 0
    found = stored(sqlite_workspace)
    assert len(found) == 3 and found["p1@example.com"]["attributes"]["col9998"] == "9998"


PEAK = """
import resource, sys
from winback.cli import main
try:
    main()
finally:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak_kib={peak}", file=sys.stderr)
"""


@pytest.mark.slow
def test_a_200_megabyte_field_stays_under_the_memory_limit(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """The field is left empty with a warning; the import, in its own process, peaks
    under the 1.5 GB an import may use."""
    path = tmp_path / "huge.csv"
    with path.open("wb") as stream:
        stream.write(b"email,notes\nann@example.com,short\nbob@example.com,")
        block = b"x" * (1024 * 1024)
        for _ in range(200):
            stream.write(block)
        stream.write(b"\ncid@example.com,ok\n")
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    command = [sys.executable, "-c", PEAK, "import", "contacts", str(path)]
    command += ["-w", str(sqlite_workspace.path), "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert (report["imported"], report["rejected"], report["warnings"]) == (3, 0, 1)
    assert report["warnings_by_reason"] == {"field too long": 1}
    peak = int(done.stderr.rsplit("peak_kib=", 1)[1].split()[0]) * 1024
    assert peak < 1.5 * 1024**3, f"peak RSS {peak / 1024**2:.0f} MiB"


# Any bytes at all: a report whose counts add up, or a clear InputFileError.
_CELLS = st.sampled_from(
    [
        "ann@example.com",
        "06 12 34 56 78",
        "0001-01-01",
        "9999-12-31T23:59:59-01:00",
        "31/02/2024",
        "03/14",
        '"Clients","VIP"',
        "purchase",
        "open",
        "1e400",
        "=1+1",
        "\x00",
        "\x8f",
        "",
    ]
)
_LINES = st.lists(st.lists(_CELLS | st.text(max_size=8), max_size=6), max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.sampled_from(
        [
            "email,phone,created_at,birthday,tags",
            "email;type;date;amount;channel",
            '{"email": 1}',
        ]
    ),
    lines=_LINES,
    noise=st.binary(max_size=64),
    suffix=st.sampled_from([".csv", ".jsonl"]),
    kind=st.sampled_from(["contacts", "events"]),
)
def test_any_content_gives_a_report_or_a_clear_error(
    sqlite_workspace: Workspace,
    tmp_path: Path,
    header: str,
    lines: list[list[str]],
    noise: bytes,
    suffix: str,
    kind: str,
) -> None:
    body = "\n".join([header, *(",".join(line) for line in lines)]).encode("utf-8", "replace")
    path = tmp_path / f"file{suffix}"
    path.write_bytes(
        body + noise + b"\n" + body[: len(body) // 2].decode("latin-1").encode("cp1252", "replace")
    )
    importer = import_contacts if kind == "contacts" else import_events
    try:
        report = importer(sqlite_workspace, path, now=NOW)
    except InputFileError as error:
        assert str(path) in str(error)
        return
    assert report.read == report.imported + report.merged + report.rejected
