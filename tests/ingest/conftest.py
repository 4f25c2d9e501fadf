"""Fixtures of the import tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from winback.ingest import import_contacts, reader
from winback.store.schema import contacts, events
from winback.workspace import Workspace

#: The clock of the imports that use :func:`base`.
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def base(workspace: Workspace, tmp_path: Path) -> Workspace:
    """A workspace (on each engine) holding two contacts, ann (with a phone) and bob."""
    path = tmp_path / "contacts.csv"
    path.write_text("email,phone\nann@example.com,0612345678\nbob@example.com,\n")
    import_contacts(workspace, path, now=NOW)
    return workspace


def stored(workspace: Workspace) -> list[dict[str, Any]]:
    """The events the workspace holds, with their contact's email, in time order."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(events, contacts.c.email)
            .join(contacts)
            .order_by(events.c.occurred_at, events.c.type, contacts.c.email)
        )
        return [dict(row) for row in rows.mappings()]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Blocks of 4 rows (Parquet) or of the first reads of 64 bytes that make 4 rows
    (CSV): any file of a few lines spans several blocks, read ahead by a thread."""
    monkeypatch.setattr(reader, "BLOCK_ROWS", 4)
    monkeypatch.setattr(reader, "_CSV_READ_BYTES", 64)
    yield 4
