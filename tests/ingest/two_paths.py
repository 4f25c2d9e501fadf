"""What the tests holding the block path to the row path share, for contacts and events:
a pair of identical workspaces, the importer with the file's blocks withheld, the files
both paths read, and the quarantine as a user reads it."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from winback.domain import ChannelStatus
from winback.ingest import import_contacts
from winback.ingest.columns import CONTACT_ALIASES, EVENT_ALIASES, map_columns
from winback.ingest.contacts import ContactBatch
from winback.ingest.events import EventBatch
from winback.ingest.pipeline import ImportReport, run
from winback.ingest.reader import open_source
from winback.workspace import Workspace

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
    tmp_path: Path, make: Callable[[Path], Workspace]
) -> Iterator[tuple[Workspace, Workspace]]:
    """Two identical workspaces: one imports by blocks, the other by rows."""
    blocks, rows = make(tmp_path / "blocks"), make(tmp_path / "rows")
    yield blocks, rows
    blocks.close()
    rows.close()


def import_by_rows(
    workspace: Workspace, path: Path, kind: str, status: ChannelStatus | None = None
) -> ImportReport:
    """The row path alone: the same importer (``contacts`` or ``events``) with the
    file's blocks withheld."""
    source = open_source(path)
    try:
        source.blocks = None
        if kind == "contacts":
            columns = map_columns(source.header, CONTACT_ALIASES, {}, source=str(path))
            batch: ContactBatch | EventBatch = ContactBatch(
                workspace, columns, NOW, status, path.name
            )
        else:
            columns = map_columns(source.header, EVENT_ALIASES, {}, source=str(path))
            batch = EventBatch(workspace, columns, NOW, path.name)
        return run(source, batch, kind, workspace.quarantine_dir)
    finally:
        source.close()


def quarantine_of(report: ImportReport) -> list[list[str]]:
    if not report.quarantine:
        return []
    with open(report.quarantine, encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


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
