"""Importing events: every row stored once, or quarantined with a reason."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Connection, select

from tests.ingest.conftest import stored
from winback.clock import utcnow
from winback.compliance.suppression import is_suppressed
from winback.errors import InputFileError
from winback.ingest import import_contacts, import_events
from winback.store.engine import CACHE_SIZE
from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_events_in_the_forms_files_use(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "Email;Event;Date;Montant;Canal;machine_open\n"
        "ANN@example.com ;Achat;05/01/2024 14:30;1 234,50 €;magasin;\n"
        "ann@example.com;opened;2024-01-06T10:00:00+01:00;;;true\n"
        "bob@example.com;click;1704537600;;Email;\n"
    )
    report = import_events(base, path, now=NOW)
    assert (report.imported, report.rejected) == (3, 0), report.by_reason
    rows = stored(base)
    purchase, machine_open, click = rows
    assert (purchase["type"], purchase["channel"], purchase["amount"]) == (
        "purchase",
        "store",
        1234.5,
    )
    assert purchase["occurred_at"] == datetime(2024, 1, 5, 14, 30)
    assert (machine_open["occurred_at"], machine_open["machine_open"]) == (
        datetime(2024, 1, 6, 9, 0),
        True,
    )
    assert (click["email"], click["occurred_at"]) == (
        "bob@example.com",
        datetime(2024, 1, 6, 10, 40),
    )


def test_events_by_phone(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "sms.csv"
    path.write_text("mobile,type,timestamp\n06 12 34 56 78,reply,2024-02-01 09:00\n")
    report = import_events(base, path, now=NOW)
    assert report.imported == 1
    assert stored(base)[0]["channel"] == "sms"


def test_bad_rows_are_quarantined_and_counts_add_up(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "email,type,timestamp,amount\n"
        "ann@example.com,purchase,2024-01-01,10\n"
        "ann@example.com,teleport,2024-01-01,\n"
        "zed@example.com,click,2024-01-01,\n"
        "ann@example.com,click,yesterday,\n"
        "ann@example.com,click,2030-01-01,\n"
        "ann@example.com,purchase,2024-01-02,-5\n"
        "ann@example.com,purchase,2024-01-03,abc\n"
    )
    report = import_events(base, path, now=NOW)
    assert (report.read, report.imported, report.merged, report.rejected) == (7, 1, 0, 6)
    assert report.by_reason == {
        "unknown event type": 1,
        "unknown contact": 1,
        "unparseable date": 1,
        "date in the future": 1,
        "negative amount": 1,
        "unparseable amount": 1,
    }
    assert report.quarantine is not None
    with open(report.quarantine, encoding="utf-8") as stream:
        quarantine = list(csv.DictReader(stream))
    assert [row["line"] for row in quarantine] == ["3", "4", "5", "6", "7", "8"]
    assert quarantine[1]["reason"] == "unknown contact 'zed@example.com': import the contact first"


def test_importing_the_same_file_twice_adds_nothing(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "email,type,timestamp,amount,campaign\n"
        "ann@example.com,purchase,2024-01-01T10:00:00Z,10.5,\n"
        "ann@example.com,open,2024-01-01T10:00:00Z,,spring\n"
        "ann@example.com,open,2024-01-01T10:00:00Z,,spring\n"
    )
    first = import_events(base, path, now=NOW)
    second = import_events(base, path, now=NOW)
    assert (first.imported, first.merged) == (2, 1)
    assert (second.imported, second.merged) == (0, 3)
    assert len(stored(base)) == 2


def test_refusal_events_change_the_channel_status(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "esp.csv"
    path.write_text(
        "email,type,timestamp,channel\n"
        "ann@example.com,hard_bounce,2024-03-01,email\n"
        "bob@example.com,spam,2024-03-02,email\n"
    )
    import_events(base, path, now=NOW)
    import_events(base, path, now=NOW)
    with base.engine.connect() as connection:
        statuses = dict(connection.execute(select(contacts.c.email, contacts.c.email_status)).all())
        decisions = connection.execute(
            select(audit.c.action, audit.c.reason).order_by(audit.c.id)
        ).all()
        suppressed = connection.execute(select(suppressions.c.reason)).scalars().all()
    assert statuses == {"ann@example.com": "bounced", "bob@example.com": "complained"}
    # The second import changed nothing.
    assert sorted(decisions) == [
        ("status_change", "email bounced"),
        ("status_change", "email complained"),
        ("suppress", "bounce_hard"),
        ("suppress", "complaint"),
    ]
    assert sorted(suppressed) == ["bounce_hard", "complaint"]


def test_a_refusal_of_an_unknown_address_is_kept(base: Workspace, tmp_path: Path) -> None:
    """An ESP's unsubscribes name people the base never imported: each address is
    suppressed (a contact imported later is not written to), the row is quarantined."""
    path = tmp_path / "esp.csv"
    path.write_text(
        "email,phone,type,timestamp,channel,body\n"
        "Zoe@Example.org,,unsubscribe,2024-03-01,email,\n"
        ",0698765432,reply,2024-03-02,sms,STOP\n"
        "yan@example.net,,open,2024-03-02,email,\n"
    )
    report = import_events(base, path, now=NOW)
    assert (report.imported, report.rejected) == (0, 3)
    with base.engine.connect() as connection:
        assert is_suppressed(connection, base, "email", "zoe@example.org")
        assert is_suppressed(connection, base, "sms", "+33698765432")
        assert not is_suppressed(connection, base, "email", "yan@example.net")
    quarantined = Path(report.quarantine or "").read_text()
    assert quarantined.count("its refusal is on the suppression list") == 2


def test_a_refusal_without_a_usable_date_is_applied(base: Workspace, tmp_path: Path) -> None:
    """An unsubscribe or a complaint whose date is missing, unreadable or in the future
    cannot be stored as an event, but the person said no: the refusal is applied, dated
    at the import, and the row is quarantined saying so."""
    path = tmp_path / "esp.csv"
    path.write_text(
        "email,type,timestamp,channel\n"
        "ann@example.com,unsubscribe,not a date,email\n"
        "bob@example.com,spam,2031-01-01,email\n"
        "bob@example.com,open,,email\n"
    )
    report = import_events(base, path, now=NOW)
    assert (report.imported, report.rejected) == (0, 3)
    with base.engine.connect() as connection:
        statuses = dict(connection.execute(select(contacts.c.email, contacts.c.email_status)).all())
        refused_at = connection.execute(select(suppressions.c.refused_at)).scalars().all()
    assert statuses == {"ann@example.com": "unsubscribed", "bob@example.com": "complained"}
    assert refused_at == [NOW.replace(tzinfo=None)] * 2
    quarantined = Path(report.quarantine or "").read_text()
    assert quarantined.count("its refusal is applied, dated at the import") == 2


def test_missing_columns_name_what_is_missing(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("email,when\nann@example.com,2024-01-01\n")
    with pytest.raises(InputFileError, match=r"no type column \(columns found: 'email', 'when'\)"):
        import_events(base, path, now=NOW)


def test_parquet_events_and_wrong_types(base: Workspace, tmp_path: Path) -> None:
    good = tmp_path / "events.parquet"
    table = pa.table(
        {
            "email": ["ann@example.com", "bob@example.com", "nobody@example.com"],
            "event_type": ["purchase", "visit", "visit"],
            "occurred_at": pa.array(
                [datetime(2024, 1, 1, 10), datetime(2024, 1, 2), datetime(2024, 1, 3)],
                pa.timestamp("us"),
            ),
            "amount": [19.9, None, None],
        }
    )
    pq.write_table(table, good)
    report = import_events(base, good, now=NOW)
    assert (report.imported, report.rejected) == (2, 1)
    wrong = tmp_path / "wrong.parquet"
    pq.write_table(table.set_column(2, "occurred_at", pa.array([True, False, True])), wrong)
    with pytest.raises(InputFileError, match=r"column 'occurred_at' .* has Parquet type bool"):
        import_events(base, wrong, now=NOW)


def test_real_clock_default(base: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"email,type,timestamp\nann@example.com,visit,{utcnow().date().isoformat()}\n")
    assert import_events(base, path, now=utcnow()).imported == 1


def _event_indexes(workspace: Workspace) -> set[str]:
    with workspace.engine.connect() as connection:
        found = connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        )
        return {name for (name,) in found if name.startswith("ix_")}


def test_a_large_import_rebuilds_the_indexes_it_set_aside(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large import drops the secondary indexes of events and builds them again, and
    an import finds them again when an earlier one died before its end."""
    from winback.store import contacts as store

    contacts_file = tmp_path / "contacts.csv"
    contacts_file.write_text("email\nann@example.com\n")
    import_contacts(sqlite_workspace, contacts_file, now=NOW)
    expected = _event_indexes(sqlite_workspace)
    assert expected == {"ix_events_contact_time", "ix_events_message_id", "ix_events_outbox"}
    monkeypatch.setattr(store, "BULK_ROWS", 1)
    # The indexes are built with the usual page cache: the sort takes as much again.
    caches: list[int] = []
    create = store._create_event_indexes

    def create_with_cache(connection: Connection) -> None:
        caches.append(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
        create(connection)

    monkeypatch.setattr(store, "_create_event_indexes", create_with_cache)
    path = tmp_path / "events.csv"
    path.write_text(
        "email,type,timestamp,message_id\n"
        "ann@example.com,open,2024-01-01,m1\n"
        "ann@example.com,click,2024-01-02,m1\n"
    )
    assert import_events(sqlite_workspace, path, now=NOW).imported == 2
    assert _event_indexes(sqlite_workspace) == expected
    assert caches[-1] == CACHE_SIZE
    with sqlite_workspace.engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_events_message_id")
    import_events(sqlite_workspace, path, now=NOW)
    assert _event_indexes(sqlite_workspace) == expected
    with sqlite_workspace.engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN QUERY PLAN SELECT * FROM events WHERE message_id = 'm1'"
        ).all()
    assert "ix_events_message_id" in str(plan)


def test_an_import_gives_its_connection_back_with_the_usual_page_cache(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import writes with a larger SQLite page cache; the pooled connection that the
    tracking server or a score takes next has the usual one again."""
    from winback import events as writer
    from winback.store import contacts as store

    contacts_file = tmp_path / "contacts.csv"
    contacts_file.write_text("email\nann@example.com\n")
    import_contacts(sqlite_workspace, contacts_file, now=NOW)
    seen: list[int] = []
    insert = store.insert_event_table

    # The block path and the row path both write events as a table.
    def insert_and_look(connection: Connection, *args: Any) -> int:
        seen.append(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
        return insert(connection, *args)

    monkeypatch.setattr(writer, "insert_event_table", insert_and_look)
    path = tmp_path / "events.csv"
    path.write_text("email,type,timestamp\nann@example.com,open,2024-01-01\n")
    assert import_events(sqlite_workspace, path, now=NOW).imported == 1
    assert seen and set(seen) == {store.IMPORT_CACHE_SIZE}
    with sqlite_workspace.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA cache_size").scalar_one() == CACHE_SIZE


def test_an_import_leaves_no_scratch_database(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each block goes into SQLite through a scratch database beside the database file:
    none is left attached to the pooled connection nor on disk, after an import and
    after one that failed."""
    from winback import events as writer

    folder = sqlite_workspace.path

    def scratch() -> list[Path]:
        return list(folder.glob(".winback-import-*"))

    contacts_file = tmp_path / "contacts.csv"
    contacts_file.write_text("email\nann@example.com\n")
    import_contacts(sqlite_workspace, contacts_file, now=NOW)
    path = tmp_path / "events.csv"
    path.write_text("email,type,timestamp\nann@example.com,open,2024-01-01\n")
    assert import_events(sqlite_workspace, path, now=NOW).imported == 1

    def attached() -> list[str]:
        with sqlite_workspace.engine.connect() as connection:
            names = [row[1] for row in connection.exec_driver_sql("PRAGMA database_list")]
        return [name for name in names if name != "temp"]

    assert attached() == ["main"]
    assert scratch() == []
    from winback.store.contacts import insert_event_table as insert

    def insert_then_fail(*args: Any) -> int:
        insert(*args)
        raise OSError("disk full")

    monkeypatch.setattr(writer, "insert_event_table", insert_then_fail)
    path.write_text("email,type,timestamp\nann@example.com,click,2024-01-02\n")
    with pytest.raises(OSError, match="disk full"):
        import_events(sqlite_workspace, path, now=NOW)
    assert attached() == ["main"]
    assert scratch() == []
    assert [row["type"] for row in stored(sqlite_workspace)] == ["open"]
