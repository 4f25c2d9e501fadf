"""Fixtures of the import tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from winback.ingest import reader


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Blocks of 4 rows (Parquet) or of the first reads of 64 bytes that make 4 rows
    (CSV): any file of a few lines spans several blocks, read ahead by a thread."""
    monkeypatch.setattr(reader, "BLOCK_ROWS", 4)
    monkeypatch.setattr(reader, "_CSV_READ_BYTES", 64)
    yield 4
