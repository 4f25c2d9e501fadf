"""The column-wise (block) path of the events importer gives exactly what the row path
gives: the same counts, the same quarantine, the same stored rows, statuses, audit and
suppressions, on mixed good and bad input in CSV and Parquet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.ingest.two_paths import (
    NOW,
    import_by_rows,
    paris_workspace,
    report_view,
    two_workspaces,
    without_ids,
    write_csv,
    write_parquet,
)
from winback.ingest import events as events_importer
from winback.ingest import import_events, reader
from winback.ingest.pipeline import ImportReport
from winback.store.schema import audit, contacts, events, suppressions
from winback.workspace import Workspace

HEADER = ["Email", "mobile", "type", "timestamp", "canal", "montant", "currency", "campaign"]
HEADER += ["message_id", "machine_open", "url"]

EMAILS = [
    "ann@example.com",
    "ANN@Example.com ",
    " bob@example.com",
    "bob@EXAMPLE.COM",
    "zed@example.com",
    "not-an-email",
    "cid@example.com",
    "élodie@exemple.fr",
    "",
    "  ",
]
PHONES = ["", "06 12 34 56 78", "+33612345678", "+33699999999", "12"]
TYPES = ["open", "Opened", " click", "purchase", "Achat", "visit", "unsubscribe", "hard_bounce"]
TYPES += ["spam", "reply", "teleport", "", "delivered", "complaint"]
DATES = [
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "2024-01-01 10:00:00.5+01:00",
    "2024-03-31 02:30",  # skipped by the change to summer time in Paris
    "2024-10-27 02:30:00",  # twice in Paris
    "2024-06-01T12:00:00.123456",
    "2024-02-30",
    "05/01/2024 14:30",
    "1704537600",
    "2099-01-01",
    "2026-06-02 10:00",  # within the day of clock skew
    "yesterday",
    "0000-01-01",
    "0999-12-31 23:00",
    " 2024-05-05 08:00 ",
    "",
]
CHANNELS = ["", "email", "Email", "sms", "magasin", "web", "pigeon"]
AMOUNTS = ["", "10", "12.50", "1 234,50 €", "-5", "abc", "0.1", "3.0"]
CURRENCIES = ["", "eur", " usd ", "€uro"]
CAMPAIGNS = ["", "spring", " spring ", "x" * 201, "soldes-été", "two\nlines", "a\r\nb\rc"]
MESSAGE_IDS = ["", "m1", "m2"]
FLAGS = ["", "true", "0", "oui", "maybe"]

row_strategy = st.tuples(
    *(
        st.sampled_from(choices)
        for choices in (
            EMAILS,
            PHONES,
            TYPES,
            DATES,
            CHANNELS,
            AMOUNTS,
            CURRENCIES,
            CAMPAIGNS,
            MESSAGE_IDS,
            FLAGS,
            ["", "https://shop.example/a"],
        )
    )
)


def _workspace(folder: Path) -> Workspace:
    return paris_workspace(
        folder,
        "email,phone\nann@example.com,0612345678\nbob@example.com,\ncid@example.com,0699999999\n"
        "élodie@exemple.fr,\n",
    )


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Workspace]]:
    yield from two_workspaces(tmp_path, monkeypatch, _workspace)


def outcome(workspace: Workspace, report: ImportReport) -> dict[str, Any]:
    with workspace.engine.connect() as connection:
        stored = connection.execute(select(events, contacts.c.email).join(contacts)).mappings()
        decisions = connection.execute(
            select(
                audit.c.actor, audit.c.contact_id, audit.c.action, audit.c.reason, audit.c.details
            )
        ).all()
        statuses = connection.execute(
            select(contacts.c.id, contacts.c.email_status, contacts.c.sms_status)
        ).all()
        suppressed = connection.execute(select(suppressions.c.channel, suppressions.c.reason)).all()
    return {
        **report_view(report),
        "events": without_ids(stored),
        "audit": sorted(map(repr, decisions)),
        "statuses": sorted(statuses),
        "suppressions": sorted(suppressed),
    }


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(row_strategy, min_size=1, max_size=120), parquet=st.booleans())
def test_blocks_and_rows_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path, rows: list[tuple[str, ...]], parquet: bool
) -> None:
    by_blocks, by_rows = pair
    path = tmp_path / ("events.parquet" if parquet else "events.csv")
    (write_parquet if parquet else write_csv)(path, HEADER, rows)
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    second = outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first == second


def test_typed_parquet_columns_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    """Timestamps with and without a zone, dates, numbers and flags as Parquet types."""
    by_blocks, by_rows = pair
    moments = [datetime(2024, 3, 31, 2, 30), datetime(2024, 10, 27, 2, 30, 0, 7), None]
    moments += [datetime(2024, 1, 1, 12), datetime(2099, 1, 1)]
    table = pa.table(
        {
            "email": [
                "ann@example.com",
                "Bob@example.com",
                "ann@example.com",
                None,
                "bob@example.com",
            ],
            "phone": [None, None, None, "+33699999999", None],
            "event": ["purchase", "open", "click", "visit", "click"],
            "occurred_at": pa.array(moments, pa.timestamp("ms")),
            "utc": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "amount": pa.array([19.9, None, None, 2.5, 3], pa.float64()),
            "machine_open": pa.array([True, None, False, True, None]),
        }
    )
    for name, mapping in (("local", "occurred_at"), ("utc", "utc")):
        path = tmp_path / f"{name}.parquet"
        chosen = table.drop_columns(["utc" if mapping == "occurred_at" else "occurred_at"])
        pq.write_table(
            chosen.rename_columns(
                [*chosen.column_names[:3], "occurred_at", *chosen.column_names[4:]]
            ),
            path,
        )
        first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
        second = outcome(by_rows, import_by_rows(by_rows, path, "events"))
        assert first == second
        assert first["counts"] == (5, 3, 0, 2)


def test_what_arrow_cannot_read_is_read_by_the_csv_module_from_there(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    """A record of the wrong width, an empty line and a quoted line break: the lines in
    the quarantine are the file's, before and after the point where Arrow gave up."""
    by_blocks, by_rows = pair
    path = tmp_path / "events.csv"
    path.write_text(
        "email,type,timestamp,campaign\n"
        'ann@example.com,open,2024-01-01,"two\nlines"\n'
        "ann@example.com,teleport,2024-01-01,\n"
        "ann@example.com,click\n"
        "\n"
        "bob@example.com,click,2024-01-03,\n"
        "zed@example.com,click,2024-01-03,\n"
    )
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first["counts"] == (5, 2, 0, 3)
    assert [row[0] for row in first["quarantine"][1:]] == ["4", "5", "8"]


def test_large_integer_amounts_and_old_dates_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    by_blocks, by_rows = pair
    path = tmp_path / "orders.parquet"
    table = pa.table(
        {
            "email": ["ann@example.com", "bob@example.com", "ann@example.com"],
            "type": ["purchase", "purchase", "purchase"],
            "date": pa.array(
                [datetime(2024, 1, 1), datetime(999, 5, 1), datetime(2024, 1, 2)],
                pa.timestamp("us"),
            ),
            "amount": pa.array([2**60 + 1, 5, -3], pa.int64()),
        }
    )
    pq.write_table(table, path)
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first["counts"] == (3, 2, 0, 1)


def test_arrow_reads_gathered_into_blocks_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small reads of Arrow's CSV reader gathered into each block, then a record it
    cannot read halfway through a block: every row is read once, on its own line."""
    by_blocks, by_rows = pair
    monkeypatch.setattr(reader, "_CSV_READ_BYTES", 256)
    monkeypatch.setattr(reader, "BLOCK_ROWS", 20)
    lines = [f"ann@example.com,open,2024-01-01,c{row}" for row in range(100)]
    lines[30] = "ann@example.com,teleport,2024-01-01,"
    lines[70] = "ann@example.com,click"
    path = tmp_path / "events.csv"
    path.write_text("email,type,timestamp,campaign\n" + "\n".join(lines) + "\n")
    source = reader.open_source(path)
    assert source.blocks is not None
    blocks = list(source.blocks())
    source.close()
    by_arrow = [len(block.lines) for block in blocks if block.batch is not None]
    assert all(size >= 20 for size in by_arrow[:-1])
    assert sum(by_arrow) == 70  # the records before the one of the wrong width
    assert sum(len(block.rows) for block in blocks) == 30
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first["counts"] == (100, 98, 0, 2)
    assert [row[0] for row in first["quarantine"][1:]] == ["32", "72"]


def test_parquet_row_groups_gathered_into_blocks_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Parquet file of many small row groups, read a row group at a time and gathered
    into blocks: every row is read once, numbered in file order."""
    by_blocks, by_rows = pair
    monkeypatch.setattr(reader, "BLOCK_ROWS", 20)
    types = ["open"] * 100
    types[30] = "teleport"
    table = pa.table(
        {
            "email": ["ann@example.com"] * 100,
            "type": types,
            "timestamp": ["2024-01-01"] * 100,
            "campaign": [f"c{row}" for row in range(100)],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path, row_group_size=7)
    source = reader.open_source(path)
    assert source.blocks is not None
    sizes = [len(block.lines) for block in source.blocks()]
    source.close()
    assert all(size >= 20 for size in sizes[:-1])
    assert sum(sizes) == 100
    first = outcome(by_blocks, import_events(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "events"))
    assert first["counts"] == (100, 99, 0, 1)
    assert [row[0] for row in first["quarantine"][1:]] == ["31"]


def test_a_block_written_without_a_scratch_folder_is_stored_alike(
    pair: tuple[Workspace, Workspace], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a scratch database (PostgreSQL's way, or an importer that made none) a
    block's rows go in as tuples: on SQLite their times and flags are stored as the
    scratch path stores them, the text that queries by time compare with."""
    with_scratch, without = pair
    path = tmp_path / "events.csv"
    rows: list[tuple[str, ...]] = [
        ("ann@example.com", "", "open", "2024-01-01 10:00", "email", "", "", "", "m1", "yes", ""),
        ("bob@example.com", "", "purchase", "2024-02-01", "store", "12,5", "EUR", "", "", "", ""),
    ]
    write_csv(path, HEADER, rows)
    import_events(with_scratch, path, now=NOW)

    @contextmanager
    def no_scratch(connection: Any) -> Iterator[None]:
        yield None

    monkeypatch.setattr(events_importer, "event_table_scratch", no_scratch)
    import_events(without, path, now=NOW)

    def raw(workspace: Workspace) -> list[tuple[Any, ...]]:
        with workspace.engine.connect() as connection:
            query = "SELECT occurred_at, machine_open, amount FROM events ORDER BY occurred_at"
            return [tuple(row) for row in connection.exec_driver_sql(query)]

    assert raw(without) == raw(with_scratch) != []
