"""Attacks on the events import's block path: blocks typed as Arrow tables, written
through a scratch database (SQLite) or COPY (PostgreSQL), read ahead in a thread. Each
test is a check a user would make: every row stored once or quarantined with a reason,
counts that add up, the first line of two same events kept, no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import Phase
from sqlalchemy import select
from typer.testing import CliRunner

from tests.ingest.conftest import stored
from tests.ingest.test_block_path import outcome
from tests.ingest.two_paths import (
    import_by_rows,
    paris_workspace,
    two_workspaces,
    write_csv,
    write_parquet,
)
from winback.cli import app
from winback.errors import InputFileError
from winback.ingest import import_contacts, import_events
from winback.ingest.pipeline import ImportReport
from winback.store.schema import events
from winback.workspace import Workspace

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# The property tests report their first failing example: shrinking one takes minutes.
UNSHRUNK = [Phase.explicit, Phase.reuse, Phase.generate]
HEADER = "email,type,timestamp,amount,campaign,url,machine_open\n"


def adds_up(report: ImportReport) -> bool:
    return report.read == report.imported + report.merged + report.rejected


def test_the_first_line_of_two_same_events_is_kept_across_paths_and_blocks(
    base: Workspace, tmp_path: Path, small_blocks: int
) -> None:
    """Two rows of one event, one cleaned column-wise and one by the row path (a
    dd/mm/yyyy date), in both orders, then again in a later block: the side fields
    stored are those of the first line."""
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER
        + "ann@example.com,open,01/01/2024 10:00,,,u-slow-first,\n"  # line 2, row path
        + "ann@example.com,open,2024-01-01 10:00,,,u-fast-second,\n"  # line 3, block
        + "bob@example.com,click,2024-01-02,,,b-fast-first,\n"  # line 4, block
        + "bob@example.com,click,02/01/2024,,,b-slow-second,\n"  # line 5, row path
        + "ann@example.com,open,2024-01-01T10:00:00Z,,,u-next-block,\n"  # line 6
        + "bob@example.com,click,02/01/2024 00:00,,,b-next-block,\n"  # line 7
    )
    report = import_events(base, path, now=NOW)
    assert (report.read, report.imported, report.merged, report.rejected) == (6, 2, 4, 0)
    assert [row["url"] for row in stored(base)] == ["u-slow-first", "b-fast-first"]
    again = import_events(base, path, now=NOW)
    assert (again.imported, again.merged) == (0, 6)


def test_blank_and_all_bad_blocks_and_exact_block_boundaries(
    base: Workspace, tmp_path: Path, small_blocks: int
) -> None:
    """A block of only blank records (no row left), a block of only rejected rows, and
    files of exactly one and two blocks."""
    good = [f"ann@example.com,open,2024-01-0{day},,,,\n" for day in range(1, 9)]
    blank = [",,,,,,\n"] * 4
    bad = [f"zed@example.com,open,2024-02-0{day},,,,\n" for day in range(1, 5)]
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "".join(good[:4] + blank + bad + good[4:]))
    report = import_events(base, path, now=NOW)
    assert (report.read, report.imported, report.merged, report.rejected) == (12, 8, 0, 4)
    for rows in (4, 8):
        exact = tmp_path / f"exact{rows}.parquet"
        cells = [line.strip().split(",") for line in good[:rows]]
        write_parquet(exact, HEADER.strip().split(","), [tuple(row) for row in cells])
        again = import_events(base, exact, now=NOW)
        assert (again.read, again.imported, again.merged) == (rows, 0, rows)
    assert len(stored(base)) == 8


def test_an_event_imported_by_blocks_is_the_same_event_from_json_lines(
    base: Workspace, tmp_path: Path, small_blocks: int
) -> None:
    """The same events from a CSV file (the block path) and from JSON Lines (the row
    path, one write per batch): the second import merges every one, whichever came first,
    and stores the same values (times before 1970 with a fraction of a second too)."""
    rows = [
        ("ann@example.com", "purchase", "1969-07-20 20:17:40.5", "12.5", "moon", "", "true"),
        ("ann@example.com", "open", "1960-01-01 00:00:00.000001", "", "", "", "1"),
        ("bob@example.com", "click", "2024-01-01 10:00:00.25", "", "c", "https://x", ""),
        ("bob@example.com", "visit", "1999-12-31 23:59:59.999999", "", "", "", "no"),
        ("ann@example.com", "open", "1970-01-01 00:00:00", "", "", "", ""),
    ]
    names = HEADER.strip().split(",")
    csv_path = tmp_path / "events.csv"
    csv_path.write_text(HEADER + "".join(",".join(row) + "\n" for row in rows))
    jsonl_path = tmp_path / "events.jsonl"
    jsonl_path.write_text(
        "".join(json.dumps(dict(zip(names, row, strict=True))) + "\n" for row in rows)
    )
    first = import_events(base, csv_path, now=NOW)
    assert (first.imported, first.rejected) == (5, 0), first.by_reason
    by_blocks = stored(base)
    second = import_events(base, jsonl_path, now=NOW)
    assert (second.imported, second.merged) == (0, 5)
    moments = sorted(row["occurred_at"] for row in by_blocks)
    assert moments[:2] == [
        datetime(1960, 1, 1, 0, 0, 0, 1),
        datetime(1969, 7, 20, 20, 17, 40, 500000),
    ]


def test_a_file_whose_name_is_not_utf8(base: Workspace, tmp_path: Path) -> None:
    """A file name with a byte that is not UTF-8 (an export from an old system): its
    events are imported, the name kept readable, or the import says why not."""
    path = tmp_path / os.fsdecode(b"export-\xe9t\xe9.csv")
    path.write_text(HEADER + "ann@example.com,open,2024-01-01,,,,\n")
    try:
        report = import_events(base, path, now=NOW)
    except InputFileError as error:
        assert "export-" in str(error)
        return
    assert (report.read, report.imported) == (1, 1)


def run_cli(cli: CliRunner, workspace: Workspace, path: Path, *options: str) -> Any:
    args = ["import", "events", str(path), "-w", str(workspace.path), *options]
    result = cli.invoke(app, [*args, "--now", "2026-06-01T00:00:00Z"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    return result


def test_the_cli_reports_blocks_as_json(
    base: Workspace, tmp_path: Path, small_blocks: int, cli: CliRunner
) -> None:
    path = tmp_path / "events.csv"
    lines = [f"ann@example.com,open,2024-01-{day:02d},,,,\n" for day in range(1, 11)]
    lines[3] = "zed@example.com,open,2024-01-04,,,,\n"
    lines[6] = "ann@example.com,open,07/01/2024,,,,maybe\n"
    path.write_text(HEADER + "".join(lines + lines[:2]))
    result = run_cli(cli, base, path, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert (found["read"], found["imported"], found["merged"], found["rejected"]) == (12, 9, 2, 1)
    assert found["warnings"] == 1


def test_an_import_without_a_usable_temporary_folder(
    base: Workspace, tmp_path: Path, cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folder for temporary files gone mid-run (a cleaner emptied /tmp during a long
    import; a full TMPDIR fails the same way, in ADBC's commit): the import either does
    without it, as it did before blocks went through scratch databases, or stops with a
    message; never a traceback, and nothing half written."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))
    path = tmp_path / "events.csv"
    path.write_text(HEADER + "ann@example.com,open,2024-01-01,,,,\n")
    result = run_cli(cli, base, path)
    if result.exit_code == 0:
        assert len(stored(base)) == 1
    else:
        assert "error" in result.output.lower()
        assert stored(base) == []


def test_a_parquet_file_damaged_past_its_first_block(
    base: Workspace, tmp_path: Path, small_blocks: int, cli: CliRunner
) -> None:
    """The read-ahead thread fails on a later block (a row group whose bytes are
    damaged): the import stops with a message naming the file, not a traceback; the
    blocks written before it are there, and the repaired file completes them."""
    rows = 40
    table = pa.table(
        {
            "email": ["ann@example.com"] * rows,
            "type": ["open"] * rows,
            "timestamp": [f"2024-01-01 00:{minute:02d}" for minute in range(rows)],
            "campaign": [f"campaign number {row} " * 20 for row in range(rows)],
        }
    )
    good = tmp_path / "good.parquet"
    pq.write_table(table, good, row_group_size=4, compression="snappy")
    # Bytes of the seventh row group's last column chunk, and the start of the next.
    chunk = pq.ParquetFile(good).metadata.row_group(6).column(3)
    start, size = chunk.data_page_offset, chunk.total_compressed_size
    data = bytearray(good.read_bytes())
    data[start + size // 2 : start + size - 2] = b"\xff" * (size // 2 - 2)
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(bytes(data))
    result = run_cli(cli, base, damaged)
    assert result.exit_code != 0
    assert "damaged.parquet" in result.output
    report = import_events(base, good, now=NOW)
    assert adds_up(report) and report.imported + report.merged == rows
    assert len(stored(base)) == rows


def _paris(folder: Path) -> Workspace:
    return paris_workspace(folder, "email,phone\nann@example.com,0612345678\nbob@example.com,\n")


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Workspace]]:
    yield from two_workspaces(tmp_path, monkeypatch, _paris)


ODD_AMOUNTS = ["1e308", "1e309", "99999999999999999999", "NaN", "inf", "-0", "0.1e1", "١٢٣"]
ODD_FLAGS = ["2", "-1", "NaN", "TRUE", " yes ", "x", "", "1.0"]
ODD_TIMES = [
    "1969-12-31 23:59:59.999999",
    "1900-01-01 00:00:00.5",
    "0001-01-01",
    "9999-12-31 23:59:59",
    "2024-01-01T10:00:00.1234567",
    "2024-01-01 10:00",
]
ODD_TEXTS = ["", "x" * 70_000, "y" * 5_000, "é" * 4_001, "\u2028sep\u2028", " \t"]


def test_odd_values_give_the_same_import_by_blocks_and_by_rows(
    pair: tuple[Workspace, Workspace], tmp_path: Path, small_blocks: int
) -> None:
    """Values Arrow's typing of a block may not take as the row path does: amounts too
    large or not finite, odd flags, times before 1970 or at the ends of the calendar,
    very long texts, NUL characters; and the same rows twice."""
    by_blocks, by_rows = pair
    rows = []
    for at in range(48):
        rows.append(
            (
                ["ann@example.com", "bob@example.com"][at % 2],
                ["purchase", "open", "click"][at % 3],
                ODD_TIMES[at % len(ODD_TIMES)],
                ODD_AMOUNTS[at % len(ODD_AMOUNTS)],
                ODD_TEXTS[at % len(ODD_TEXTS)],
                ODD_TEXTS[(at + 2) % len(ODD_TEXTS)],
                ODD_FLAGS[at % len(ODD_FLAGS)],
            )
        )
    header = ["email", "type", "timestamp", "amount", "campaign", "url", "machine_open"]
    # A NUL byte makes a text file binary, not a Parquet file.
    nul = [(*row[:4], "a\x00b", *row[5:]) for row in rows[:5]]
    for name, write, odd in (("odd.csv", write_csv, []), ("odd.parquet", write_parquet, nul)):
        cells: list[tuple[str, ...]] = [*rows, *rows[:7], *odd]
        path = write(tmp_path / name, header, cells)
        first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
        second = outcome(by_rows, import_by_rows(by_rows, path, "events"))
        assert first == second


def test_typed_parquet_odd_values_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path, small_blocks: int
) -> None:
    """Parquet columns typed: amounts not finite or huge, flags as any integer, times in
    nanoseconds."""
    by_blocks, by_rows = pair
    rows = 10
    table = pa.table(
        {
            "email": ["ann@example.com", "bob@example.com"] * (rows // 2),
            "type": ["purchase", "open", "click", "visit", "open"] * (rows // 5),
            "occurred_at": pa.array(
                [1_700_000_000_123_456_789 + 1_000_000_007 * at for at in range(rows)],
                pa.timestamp("ns"),
            ),
            "amount": pa.array(
                [float("nan"), float("inf"), -0.0, 1e308, 5e-324, 2.0**63, 0.1, None, 1.0, 3.0]
            ),
            "machine_open": pa.array(
                [2, -1, 0, 2**63 - 1, None, 1, 0, -(2**63), 7, None], pa.int64()
            ),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    second = outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first == second


# ``winback`` with blocks of 50 rows, as a process of its own.
_WINBACK = """
import sys
from winback.ingest import reader
reader.BLOCK_ROWS = 50
reader._CSV_READ_BYTES = 1024
from winback.cli import main
sys.argv = ["winback", *sys.argv[1:]]
main()
"""
SOURCE = Path(__file__).resolve().parent.parent.parent / "src"


def start_import(workspace: Workspace, path: Path, scratch: Path) -> subprocess.Popen[str]:
    environment = {**os.environ, "PYTHONPATH": str(SOURCE), "TMPDIR": str(scratch)}
    args = ["import", "events", str(path), "-w", str(workspace.path), "--json"]
    return subprocess.Popen(
        [sys.executable, "-c", _WINBACK, *args, "--now", "2026-06-01T00:00:00Z"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def many_events(path: Path, first: int, count: int) -> Path:
    with path.open("w") as stream:
        stream.write("email,type,timestamp,campaign\n")
        for at in range(first, first + count):
            email = ["ann@example.com", "bob@example.com"][at % 2]
            stream.write(f"{email},open,2024-01-01 00:00,c{at}\n")
    return path


def count_events(workspace: Workspace) -> int:
    with workspace.engine.connect() as connection:
        return len(connection.execute(select(events.c.id)).all())


def test_sigterm_during_an_import_leaves_no_scratch_and_loses_nothing(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """A service manager stops an import (SIGTERM) once some blocks are written: no
    scratch database is left (in TMPDIR or beside the database), and the next import of
    the file stores the rest, every event once."""
    base = tmp_path / "contacts.csv"
    base.write_text("email\nann@example.com\nbob@example.com\n")
    import_contacts(sqlite_workspace, base, now=NOW)
    path = many_events(tmp_path / "events.csv", 0, 60_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = start_import(sqlite_workspace, path, scratch)
    while count_events(sqlite_workspace) < 500 and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGTERM, errors
    assert "Traceback" not in errors
    assert list(scratch.iterdir()) == []
    assert list(sqlite_workspace.path.glob(".winback-import-*")) == []
    written = count_events(sqlite_workspace)
    report = import_events(sqlite_workspace, path, now=NOW)
    assert (report.imported, report.merged) == (60_000 - written, written)
    assert count_events(sqlite_workspace) == 60_000


def test_two_imports_at_once_store_each_event_once(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Two imports of overlapping files at the same time, each through its scratch
    databases: both finish, their counts add up, every event is stored once."""
    base = tmp_path / "contacts.csv"
    base.write_text("email\nann@example.com\nbob@example.com\n")
    import_contacts(sqlite_workspace, base, now=NOW)
    one = many_events(tmp_path / "one.csv", 0, 3_000)
    two = many_events(tmp_path / "two.csv", 1_500, 3_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    processes = [start_import(sqlite_workspace, path, scratch) for path in (one, two)]
    reports = []
    for process in processes:
        output, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors
        reports.append(json.loads(output))
    assert all(r["read"] == r["imported"] + r["merged"] + r["rejected"] for r in reports)
    assert sum(r["imported"] for r in reports) == 4_500
    assert count_events(sqlite_workspace) == 4_500
    assert list(scratch.iterdir()) == []


def test_a_parquet_text_column_that_is_not_utf8(
    base: Workspace, tmp_path: Path, cli: CliRunner
) -> None:
    """A Parquet file written by another tool with bytes that are not UTF-8 in a text
    column (a campaign name in Latin-1): the rows are imported, the bad cell left out
    with a warning, or the import says which file is wrong; never a traceback."""

    def text(values: list[bytes]) -> pa.Array:
        return pa.array(values, pa.binary()).view(pa.string())

    table = pa.table(
        {
            "email": text([b"ann@example.com"] * 3),
            "type": text([b"open", b"click", b"visit"]),
            "timestamp": text([b"2024-01-01", b"2024-01-02", b"2024-01-03"]),
            "campaign": text([b"spring", b"caf\xe9", b"\xff\xfe"]),
        }
    )
    path = tmp_path / "latin.parquet"
    pq.write_table(table, path)
    result = run_cli(cli, base, path, "--json")
    if result.exit_code == 0:
        found = json.loads(result.output)
        assert found["read"] == found["imported"] + found["merged"] + found["rejected"] == 3
    else:
        assert "latin.parquet" in result.output


def test_an_import_interrupted_between_blocks(
    base: Workspace, tmp_path: Path, small_blocks: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while the third block is written, the fourth being read ahead: the blocks
    before it stay, no scratch database stays attached or on disk, no reading thread is
    left, and the next import stores the rest."""
    from winback.ingest import events as importer
    from winback.journeys.offers import redeem_codes as redeem

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    calls = []

    def redeem_then_interrupt(*args: Any, **options: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        redeem(*args, **options)

    monkeypatch.setattr(importer, "redeem_codes", redeem_then_interrupt)
    path = tmp_path / "events.csv"
    path.write_text(
        HEADER + "".join(f"ann@example.com,open,2024-01-{day:02d},,,,\n" for day in range(1, 21))
    )
    with pytest.raises(KeyboardInterrupt):
        import_events(base, path, now=NOW)
    written = len(stored(base))
    assert 0 < written < 20
    assert list(scratch.iterdir()) == []
    assert list(base.path.glob(".winback-import-*")) == []
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("clean")]
    if base.engine.dialect.name == "sqlite":
        with base.engine.connect() as connection:
            names = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
        assert [name for name in names if name != "temp"] == ["main"]
    monkeypatch.setattr(importer, "redeem_codes", redeem)
    report = import_events(base, path, now=NOW)
    assert (report.imported, report.merged) == (20 - written, written)


@pytest.mark.slow
def test_serve_records_hits_while_an_import_writes(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """``winback serve`` records opens while an import writes its blocks: the import
    finishes with its counts, and every open the server answered is in the store."""
    from tests.channels.smtp_server import free_port
    from tests.faults.test_serve_kill import _one, start_server, wait_for
    from tests.web.conftest import recorded_events, tracked_messages

    workspace = sqlite_workspace
    opens = tracked_messages(workspace, 20, datetime(2025, 6, 1, tzinfo=UTC))[::2]
    path = tmp_path / "events.csv"
    with path.open("w") as stream:
        stream.write("email,type,timestamp,campaign\n")
        for at in range(20_000):
            stream.write(f"p{at % 20}@example.com,click,2024-01-01 00:00,c{at}\n")
    port = free_port()
    server = start_server(workspace, port, tmp_path / "serve.log")
    try:
        wait_for(lambda: _one(port, opens[0]), 60, "the server to answer")
        wait_for(lambda: recorded_events(workspace) == 1, 60, "the recorder to start")
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        importer = start_import(workspace, path, scratch)
        answered = 1
        while importer.poll() is None:
            answered += _one(port, opens[answered % len(opens)])
        output, errors = importer.communicate(timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert importer.returncode == 0, errors
    report = json.loads(output)
    assert (report["read"], report["imported"]) == (20_000, 20_000)
    assert answered > 1, "no open while the import ran"
    assert answered <= recorded_events(workspace) - 20_000 <= answered + 1
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
