"""The column-wise (block) path of the contacts importer gives exactly what the row path
gives: the same counts, the same quarantine, the same stored contacts, statuses, audit
and suppressions, on mixed good, bad and duplicated input in CSV and Parquet, merging
into contacts already stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
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
from winback.domain import ChannelStatus
from winback.ingest import import_contacts
from winback.ingest.columns import CONTACT_ALIASES, map_columns
from winback.ingest.contacts import ContactBatch
from winback.ingest.pipeline import ImportReport
from winback.ingest.reader import open_source
from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace

# Per column: values the column-wise checks vouch for, then values they leave to the
# row path (which refuses some and reads the others in their rarer forms).
CHOICES = {
    "Email": (
        ["ann@example.com", "ANN@Example.com ", " bob@example.com", "new@example.net", ""],
        ["gone@example.com", "not-an-email", "élodie@exemple.fr", "x@site.test", "  "],
    ),
    "mobile": (
        ["", "06 12 34 56 78", "+33612345678", "+33 6 99 99 99 99", "06.11.22.33.44"],
        ["+44 7911 123456", "0639000000", "12"],
    ),
    "prénom": (["", "Ann", " Léa "], ["x" * 201]),
    "pays": (["", "fr", "BE"], ["France"]),
    "tags": (["", "vip", "a;b", "b, a", ";"], []),
    "created_at": (
        ["", "2024-01-01", "2024-01-01T10:00:00Z"],
        ["31/12/2023", "2025-03-30 02:30", "2099-01-01", "yesterday"],
    ),
    "status": (["", "subscribed", "unsubscribed", "cleaned", "pending"], ["weird"]),
    "sms_optin": (["", "yes", "no"], ["maybe"]),
    "email_blacklisted": (["", "true", "false"], []),
    "birth_year": (["", "1980", "1985-05-01"], ["1890"]),
    "langue": (["", "fr_FR", "EN"], []),
    "timezone": (["", "Europe/Paris"], ["Mars/Olympus"]),
    "subscriber": (["", "1", "0"], ["x?"]),
    "points": (["", "10", " "], []),
}
HEADER = list(CHOICES)
# Mostly values the checks vouch for, so that whole rows of them are common.
row_strategy = st.tuples(*(st.sampled_from(good * 6 + bad) for good, bad in CHOICES.values()))


def _workspace(folder: Path) -> Workspace:
    """A workspace in Paris time holding two contacts and the suppression of an address
    whose contact was erased."""
    ws = paris_workspace(
        folder, "email,phone,tags\nann@example.com,0612345678,old\ncid@example.com,,\n"
    )
    with ws.engine.begin() as connection:
        connection.execute(
            suppressions.insert(),
            [
                {
                    "channel": "email",
                    "address_hash": ws.keyed_hash("gone@example.com"),
                    "reason": "complaint",
                    "created_at": datetime(2024, 1, 1),
                }
            ],
        )
    return ws


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, Workspace]]:
    yield from two_workspaces(tmp_path, monkeypatch, _workspace)


def outcome(workspace: Workspace, report: ImportReport) -> dict[str, Any]:
    """What a user can see of an import, without the ids the store chose."""
    with workspace.engine.connect() as connection:
        stored = connection.execute(select(contacts)).mappings().all()
        decisions = connection.execute(
            select(
                audit.c.actor,
                contacts.c.email,
                contacts.c.phone,
                audit.c.action,
                audit.c.reason,
                audit.c.details,
            ).join(contacts, contacts.c.id == audit.c.contact_id)
        ).all()
    return {
        **report_view(report),
        "contacts": without_ids(stored),
        "audit": sorted(map(repr, decisions)),
    }


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(row_strategy, min_size=1, max_size=80),
    parquet=st.booleans(),
    status=st.sampled_from([None, ChannelStatus.UNSUBSCRIBED]),
)
def test_blocks_and_rows_give_the_same_import(
    pair: tuple[Workspace, Workspace],
    tmp_path: Path,
    rows: list[tuple[str, ...]],
    parquet: bool,
    status: ChannelStatus | None,
) -> None:
    by_blocks, by_rows = pair
    path = tmp_path / ("contacts.parquet" if parquet else "contacts.csv")
    (write_parquet if parquet else write_csv)(path, HEADER, rows)
    first = outcome(by_blocks, import_contacts(by_blocks, path, now=NOW, status=status))
    second = outcome(by_rows, import_by_rows(by_rows, path, "contacts", status))
    assert first == second


def test_plain_rows_are_vouched_for_by_the_block_path(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Rows of nothing but values the column-wise checks know never reach the row path."""
    rows = [tuple(good[at % len(good)] for good, _ in CHOICES.values()) for at in range(40)]
    path = write_csv(tmp_path / "plain.csv", HEADER, rows)
    source = open_source(path)
    try:
        assert source.blocks is not None
        block = next(source.blocks())
        columns = map_columns(source.header, CONTACT_ALIASES, {}, source=str(path))
        batch = ContactBatch(sqlite_workspace, columns, NOW, None, path.name)
        cleaned, slow = batch.clean_block(block)
    finally:
        source.close()
    assert (len(cleaned), slow) == (40, [])
    expected = [batch.clean(list(values), [], line) for line, values in enumerate(rows, 2)]
    assert [pending.record for pending in cleaned.records(range(40))] == expected


def test_typed_parquet_columns_give_the_same_import(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    """Numbers, dates, timestamps, flags and lists as Parquet types."""
    by_blocks, by_rows = pair
    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "email": ["dan@example.com", "eve@example.com", "ann@example.com", None],
            "phone": [None, "+33 6 11 11 11 11", None, "06 22 22 22 22"],
            "birth_year": pa.array([1980, 1700, None, 1990], pa.int64()),
            "created_at": pa.array(
                [datetime(2024, 3, 31, 2, 30), None, datetime(2024, 1, 1), datetime(2099, 1, 1)],
                pa.timestamp("ms"),
            ),
            "tags": pa.array([["b", "a"], None, ["x"], []], pa.list_(pa.string())),
            "subscription_active": pa.array([True, None, False, True]),
            "joined": pa.array([date(2024, 1, 1), None, date(2023, 5, 5), None]),
        }
    )
    pq.write_table(table, path)
    first = outcome(by_blocks, import_contacts(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "contacts"))
    assert first["counts"] == (4, 3, 1, 0)
    assert [[*row[:2], row[3][:22]] for row in first["warnings_file"][1:]] == [
        ["2", "birth_year", "implausible birth year"],
        ["4", "created_at", "date in the future (20"],
    ]


def test_duplicates_in_a_block_merge_in_file_order(
    pair: tuple[Workspace, Workspace], tmp_path: Path
) -> None:
    by_blocks, by_rows = pair
    rows = [
        {"Email": "new@example.net", "prénom": "First", "tags": "a", "points": "1"},
        {"Email": "NEW@example.net", "prénom": "Second", "tags": "b"},
        {"Email": "zoe@example.com", "mobile": "+33 6 99 99 99 99"},
        {"Email": "yan@example.com", "mobile": "06 99 99 99 99"},
    ]
    path = write_csv(
        tmp_path / "dupes.csv",
        HEADER,
        [tuple(row.get(name, "") for name in HEADER) for row in rows],
    )
    first = outcome(by_blocks, import_contacts(by_blocks, path, now=NOW))
    assert first == outcome(by_rows, import_by_rows(by_rows, path, "contacts"))
    assert first["counts"] == (4, 3, 1, 0)
    assert first["warnings_by_reason"] == {"phone already belongs to another contact": 1}
    assert [row[:3] for row in first["warnings_file"][1:]] == [["5", "mobile", "06 99 99 99 99"]]
    yan = [row for row in first["contacts"] if "yan@example.com" in row]
    assert "('phone', None)" in yan[0] and "('sms_status', 'none')" in yan[0]
    merged = [row for row in first["contacts"] if "new@example.net" in row]
    assert "'Second'" in merged[0] and "['a', 'b']" in merged[0]
