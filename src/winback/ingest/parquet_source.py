"""Reading a Parquet file for the importers (:func:`winback.ingest.reader.open_source`
opens it by its magic number): by one reader per row group, whose damage stops the
import with a message naming it, and with text that is not UTF-8 (which some writers put
in Parquet's text columns) repaired and noted by line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from winback.errors import InputFileError
from winback.ingest import reader


def open_parquet(path: Path, size: int) -> reader.Source:
    """A Parquet file as a :class:`~winback.ingest.reader.Source`: its rows, and its
    row groups gathered into blocks of :data:`~winback.ingest.reader.BLOCK_ROWS`."""
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    header = list(schema.names)
    types = {field.name: str(field.type) for field in schema}
    done = [0]

    notes: dict[int, str] = {}

    def rows() -> Iterator[reader.Row]:
        number = 0
        for batch in _row_group_batches(path, parquet, 65_536):
            batch = _as_utf8(batch, number, notes)
            columns = [column.to_pylist() for column in batch.columns]
            for values in zip(*columns, strict=True):
                number += 1
                yield number, list(values)
            done[0] = number

    def blocks() -> Iterator[reader.Block]:
        number = 0
        for batch in reader.gathered(
            _row_group_batches(path, parquet, reader.BLOCK_ROWS), reader.BLOCK_ROWS
        ):
            batch = _as_utf8(batch, number, notes)
            lines = np.arange(number + 1, number + batch.num_rows + 1)
            number += batch.num_rows
            done[0] = number
            yield reader.Block(batch, lines, [])

    total = max(parquet.metadata.num_rows, 1)
    return reader.Source(
        path,
        "parquet",
        header,
        rows(),
        size,
        lambda: done[0] * size // total,
        parquet.close,
        types=types,
        blocks=blocks,
        notes=notes,
        estimated_rows=parquet.metadata.num_rows,
    )


def _row_group_batches(path: Path, parquet: pq.ParquetFile, size: int) -> Iterator[pa.RecordBatch]:
    """The rows of ``parquet`` in batches of at most ``size``, read by one reader per row
    group: pyarrow's reader of the whole file keeps Arrow memory from every row group it
    has read, where a reader per row group gives it back (see bench/RESULTS.md). A row
    group that cannot be read stops the import with a message naming it."""
    groups = parquet.num_row_groups
    for group in range(groups):
        try:
            yield from parquet.iter_batches(batch_size=size, row_groups=[group])
        except (pa.ArrowException, OSError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputFileError(
                f"{path}: row group {group + 1} of {groups} cannot be read ({reason}); the "
                "rows before it may be imported already: importing the file again once "
                "repaired adds only the rest"
            ) from None


def _as_utf8(batch: pa.RecordBatch, before: int, notes: dict[int, str]) -> pa.RecordBatch:
    """``batch`` (its first row the line after ``before``) with the bytes of its text
    columns that are not UTF-8 replaced by U+FFFD, each such cell noted by its line.
    Parquet's text is UTF-8, yet some writers put Latin-1 there, which Arrow's text
    functions refuse."""
    columns = list(batch.columns)
    for at, column in enumerate(columns):
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            continue
        try:
            column.validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        raw = column.view(
            pa.large_binary() if pa.types.is_large_string(column.type) else pa.binary()
        )
        texts: list[str | None] = []
        for row, value in enumerate(raw.to_pylist()):
            try:
                texts.append(None if value is None else value.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(value.decode("utf-8", "replace"))
                notes[before + row + 1] = (
                    f"column {batch.schema.names[at]!r}: bytes that are not UTF-8, "
                    "replaced by U+FFFD"
                )
        columns[at] = pa.array(texts, column.type)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)
