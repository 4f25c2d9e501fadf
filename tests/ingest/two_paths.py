"""What the tests holding the block path to the row path share, for contacts and events:
a pair of identical workspaces, the importer with the file's blocks withheld, the files
both paths read, and what a user reads of an import (its report and the rows stored)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from winback.domain import ChannelStatus
from winback.ingest import import_contacts
from winback.ingest.columns import CONTACT_ALIASES, EVENT_ALIASES, map_columns
from winback.ingest.contacts import ContactBatch
from winback.ingest.events import EventBatch
from winback.ingest.kinds import kind_aliases, recognise
from winback.ingest.pipeline import ImportReport, run
from winback.ingest.reader import open_source
from winback.ingest.summaries import dated_only
from winback.workspace import ENV_DATABASE_URL, Workspace

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def paris_workspace(folder: Path, base_csv: str) -> Workspace:
    """A workspace in Paris time that has imported the contacts of ``base_csv``."""
    ws = Workspace.init(folder, "ecommerce")
    config = ws.path / "winback.toml"
    config.write_text(config.read_text().replace('timezone = "UTC"', 'timezone = "Europe/Paris"'))
    ws.close()
    ws = Workspace.open(folder)
    # The same file name for both workspaces: contacts keep the name of their source.
    base = folder.parent / f"{folder.name}-base" / "base.csv"
    base.parent.mkdir()
    base.write_text(base_csv, encoding="utf-8")
    import_contacts(ws, base, now=NOW)
    return ws


def two_workspaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], Workspace]
) -> Iterator[tuple[Workspace, Workspace]]:
    """Two identical SQLite workspaces: one imports by blocks, the other by rows."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    blocks, rows = make(tmp_path / "blocks"), make(tmp_path / "rows")
    yield blocks, rows
    blocks.close()
    rows.close()


def import_by_rows(
    workspace: Workspace,
    path: Path,
    kind: str,
    status: ChannelStatus | None = None,
    now: datetime = NOW,
) -> ImportReport:
    """The row path alone: the same importer (``contacts`` or ``events``) with the
    file's blocks withheld."""
    source = open_source(path)
    try:
        source.blocks = None
        if kind == "contacts":
            recognised = recognise(source.header, path.name)
            aliases = kind_aliases(CONTACT_ALIASES, recognised)
            columns = dated_only(map_columns(source.header, aliases, {}, source=str(path)))
            batch = ContactBatch(workspace, columns, now, status, path.name, recognised)
            return run(source, batch, kind, workspace.quarantine_dir)
        columns = map_columns(source.header, EVENT_ALIASES, {}, source=str(path))
        with workspace.engine.connect() as connection:
            events = EventBatch(workspace, columns, NOW, path.name, connection)
            return run(source, events, kind, workspace.quarantine_dir)
    finally:
        source.close()


def report_view(report: ImportReport) -> dict[str, Any]:
    """What a user reads of an import's report: the counts, the reasons and the rows of
    the quarantine file, and the same of the warnings."""
    return {
        "counts": (report.read, report.imported, report.merged, report.rejected),
        "by_reason": dict(report.by_reason),
        "quarantine": read_rows(report.quarantine),
        "warnings": report.warnings,
        "warnings_by_reason": dict(report.warnings_by_reason),
        "warnings_file": read_rows(report.warnings_file),
    }


def read_rows(path: str | None) -> list[list[str]]:
    """The rows of a CSV file the import wrote (none when it wrote none)."""
    if path is None:
        return []
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def without_ids(rows: Iterable[Mapping[Any, Any]]) -> list[str]:
    """Stored rows without the ids the store chose, in an order that does not depend on
    them."""
    return sorted(
        repr(tuple((name, value) for name, value in row.items() if name != "id")) for row in rows
    )


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=";").writerows([header, *rows])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def write_parquet(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> Path:
    columns = list(zip(*rows, strict=True))
    table = pa.table(
        {
            name: pa.array(list(values), pa.string())
            for name, values in zip(header, columns, strict=True)
        }
    )
    pq.write_table(table, path)
    return path
