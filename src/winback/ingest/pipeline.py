"""The loop both importers share: read rows, clean each one, quarantine the rejects
with their line and reason, write the rest in batches, and count so the numbers add up
(read = imported + merged + rejected). A field an importer leaves empty without
rejecting its row (:class:`~winback.ingest.values.FieldWarning`) is a warning, written
beside the rejects with its line, column and value.

An importer that can clean a whole Arrow block at once (:class:`BlockBatch`) gets the
blocks of CSV and Parquet files: it cleans the rows its column-wise checks vouch for and
hands back the positions of the others, which take the row-by-row path with everything
it does (reasons, quarantine, merges). Both paths give the same rows; a test holds them
to it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, Protocol, TextIO, cast

from winback.clock import utcnow
from winback.ingest.columns import ColumnMap, map_columns, require
from winback.ingest.json_lines import unreadable_reason
from winback.ingest.reader import Block, Row, Source, is_blank, open_source
from winback.ingest.values import MAX_FIELD_LENGTH, FieldWarning
from winback.safe_output import csv_writer

BATCH_ROWS = 20_000

# (rows read so far, bytes read so far, total bytes)
ProgressCallback = Callable[[int, int, int], None]


@dataclass
class ImportReport:
    """What an import did. ``read == imported + merged + rejected`` always holds."""

    file: str
    kind: str
    read: int = 0
    imported: int = 0
    merged: int = 0
    rejected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    quarantine: str | None = None
    # Fields left empty (or read by a guess) in rows that were kept.
    warnings: int = 0
    warnings_by_reason: Counter[str] = field(default_factory=Counter)
    warnings_file: str | None = None
    seconds: float = 0.0
    # What the file was recognised as (contacts: "Mailchimp unsubscribed export"...).
    recognised: str | None = None

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.recognised or self.kind,
            "read": self.read,
            "imported": self.imported,
            "merged": self.merged,
            "rejected": self.rejected,
            "by_reason": dict(self.by_reason.most_common()),
            "quarantine": self.quarantine,
            "warnings": self.warnings,
            "warnings_by_reason": dict(self.warnings_by_reason.most_common()),
            "warnings_file": self.warnings_file,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
        }


def reason_category(reason: str) -> str:
    """The kind of a rejection, for the summary: ``invalid email 'x@': ...`` is counted
    under ``invalid email``."""
    return re.split(r" '| \"|: | \(", reason, maxsplit=1)[0].strip()


# The longest value a warning repeats: enough to find the cell, not a copy of a blob.
_WARNING_VALUE = 200


class _CsvFile:
    """A CSV file created on its first row only, so a clean import leaves nothing."""

    def __init__(self, path: Path, header: Sequence[str]) -> None:
        self.path = path
        self.header = header
        self._stream: TextIO | None = None
        self._writer: Any = None

    def add(self, row: Sequence[Any]) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv_writer(self._stream)
            self._writer.writerow(self.header)
        self._writer.writerow(["" if value is None else value for value in row])

    def close(self) -> str | None:
        if self._stream is None:
            return None
        self._stream.close()
        return str(self.path)


class Quarantine:
    """Rejected rows, written to ``quarantine/<file>.<timestamp>.csv`` with the original
    line number, the reason and the original values; and the warnings of the rows kept,
    to ``quarantine/<file>.<timestamp>.warnings.csv`` with the line, the column, the
    value (its first 200 characters) and the reason. Each file is created on its first
    row only, so a clean import leaves nothing behind.

    A batch's rows are held until :meth:`settle` and written in line order: the write
    step judges some rows after the batch's other rows were cleaned (a phone that
    belongs to another contact), and the files must not depend on where the batches
    of a file end."""

    def __init__(self, folder: Path, source: Source) -> None:
        # Named by the real clock, not the import's ``now``: two runs with the same
        # ``--now`` must not overwrite each other's rejects.
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{source.path.name}.{stamp}"
        self.path = folder / f"{name}.csv"
        self.rejects = _CsvFile(self.path, ["line", "reason", *source.header])
        self.warnings = _CsvFile(
            folder / f"{name}.warnings.csv", ["line", "column", "value", "reason"]
        )
        self._held: dict[_CsvFile, list[list[Any]]] = {self.rejects: [], self.warnings: []}

    def add(self, line: int, reason: str, values: Sequence[Any]) -> None:
        self._held[self.rejects].append([line, reason, *values])

    def warn(self, line: int, column: str, value: Any, reason: str) -> None:
        text = "" if value is None else str(value)
        if len(text) > _WARNING_VALUE:
            text = text[:_WARNING_VALUE] + "…"
        self._held[self.warnings].append([line, column, text, reason])

    def settle(self) -> None:
        """Write the rows held since the last call, by line (a line's own in the order
        they came)."""
        for target, rows in self._held.items():
            for row in sorted(rows, key=lambda row: int(row[0])):
                target.add(row)
            rows.clear()

    def close(self) -> tuple[str | None, str | None]:
        self.settle()
        return self.rejects.close(), self.warnings.close()


@dataclass
class Pending:
    """A cleaned row waiting for its batch to be written."""

    line: int
    values: list[Any]
    record: Any


# Rows the write step refuses, with reasons, or keeps with a field left empty (a phone
# that belongs to another contact), with a warning.
Refusals = list[tuple[Pending, str | FieldWarning]]


class Batch(Protocol):
    """An importer's side of the loop: clean one row, given its line in the file
    (raising ``ValueError`` with the reason to reject it, adding the fields it left empty
    to ``warnings``), and write a batch of cleaned rows, returning how many were new
    (imported), how many merged into existing data, and the rows it refused or warned
    about."""

    columns: ColumnMap

    def clean(self, values: list[Any], warnings: list[FieldWarning], line: int) -> Any: ...

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]: ...


class BlockBatch(Batch, Protocol):
    """An importer that also cleans whole blocks: ``clean_block`` returns the cleaned
    rows it vouches for (in its own shape) and the positions in the block of the rows
    left to :meth:`Batch.clean`; ``write_block`` writes both."""

    def clean_block(self, block: Block) -> tuple[Any, Sequence[int]]: ...

    def write_block(self, cleaned: Any, rows: list[Pending]) -> tuple[int, int, Refusals]: ...


def source_name(path: Path) -> str:
    """The name of the file an import reads, as the store keeps it (``events.source``,
    audit details): a byte of the name that is not UTF-8 (an old system's export) is
    replaced, not a reason to fail."""
    return path.name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@contextmanager
def mapped_source(
    path: Path,
    aliases: Mapping[str, tuple[str, ...]],
    mapping: Mapping[str, str] | None,
    required: Sequence[Sequence[str]],
) -> Iterator[tuple[Source, ColumnMap]]:
    """An importer's file, open, with its columns mapped to fields (``mapping`` first,
    then ``aliases``) and the ``required`` groups checked; closed on the way out."""
    source = open_source(path)
    try:
        columns = map_columns(source.header, aliases, mapping or {}, source=str(path))
        require(columns, required, source=str(path))
        yield source, columns
    finally:
        source.close()


def run(
    source: Source,
    batch: Batch,
    kind: str,
    quarantine_dir: Path,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Feed every row of ``source`` through ``batch``, rejects to a quarantine file in
    ``quarantine_dir``; return the report of this import of ``kind``."""
    started = perf_counter()
    report = ImportReport(file=str(source.path), kind=kind)
    quarantine = Quarantine(quarantine_dir, source)
    width = len(source.header)
    pending: list[Pending] = []

    def flush(cleaned: Any = None) -> None:
        if cleaned is None:
            imported, merged, refusals = batch.write(pending)
        else:
            imported, merged, refusals = cast(BlockBatch, batch).write_block(cleaned, pending)
        report.imported += imported
        report.merged += merged
        for row, reason in refusals:
            if isinstance(reason, FieldWarning):
                warn(row.line, reason, row.values)
            else:
                reject(row.line, reason, row.values)
        pending.clear()
        quarantine.settle()
        if progress:
            progress(report.read, source.position(), source.size)

    def reject(line: int, reason: str, values: Sequence[Any]) -> None:
        report.rejected += 1
        report.by_reason[reason_category(reason)] += 1
        quarantine.add(line, reason, values)

    def warn(line: int, warning: FieldWarning, values: Sequence[Any]) -> None:
        """A warning about a field, with its column's name and cell when it has one."""
        position = batch.columns.fields.get(warning.field)
        if position is None:
            warn_cell(line, warning.field, None, warning.reason)
        else:
            cell = values[position] if values else None
            warn_cell(line, source.header[position], cell, warning.reason)

    def warn_cell(line: int, column: str, value: Any, reason: str) -> None:
        report.warnings += 1
        report.warnings_by_reason[reason_category(reason)] += 1
        quarantine.warn(line, column, value, reason)

    def take(rows: Iterable[Row], skip_blank: bool, flush_full: bool) -> None:
        for line, values in rows:
            if skip_blank and is_blank(values):
                continue
            report.read += 1
            reason = unreadable_reason(values) or _shape_problem(values, width)
            if reason:
                reject(line, reason, values)
                continue
            usable, unusable = _usable(values)
            warnings: list[FieldWarning] = []
            try:
                record = batch.clean(usable, warnings, line)
            except ValueError as exc:
                cells = [f"{why} in column {source.header[at]!r}; " for at, why in unusable]
                reject(line, "".join(cells[:1]) + str(exc), values)
                continue
            pending.append(Pending(line, values, record))
            for position, reason in unusable:
                warn_cell(line, source.header[position], values[position], reason)
            for warning in warnings:
                warn(line, warning, values)
            if flush_full and len(pending) >= BATCH_ROWS:
                flush()

    try:
        if source.blocks is None:
            take(source.rows, skip_blank=False, flush_full=True)
        else:
            for block, column_wise in _cleaned_ahead(source.blocks(), batch):
                if block.batch is None:
                    take(block.rows, skip_blank=False, flush_full=True)
                    continue
                # Arrow's CSV reader keeps records that are blank only by rarer white space.
                skip_blank = source.format == "csv"
                if column_wise is not None:
                    cleaned, slow = column_wise
                    report.read += block.batch.num_rows - len(slow)
                    take(block.values(slow), skip_blank, flush_full=False)
                    flush(cleaned)
                else:
                    for start in range(0, block.batch.num_rows, BATCH_ROWS):
                        positions = range(start, min(start + BATCH_ROWS, block.batch.num_rows))
                        take(block.values(positions), skip_blank, flush_full=True)
        flush()
        for line, note in sorted(source.notes.items()):
            warn_cell(line, "", None, note)
    finally:
        report.quarantine, report.warnings_file = quarantine.close()
        report.seconds = perf_counter() - started
    return report


def _cleaned_ahead(
    blocks: Iterator[Block], batch: Batch
) -> Iterator[tuple[Block, tuple[Any, Sequence[int]] | None]]:
    """Each block with what :meth:`BlockBatch.clean_block` makes of it (None for a block
    of plain rows, or a batch that cleans row by row). The next block is read and cleaned
    in a thread while the caller writes this one: Arrow's reading and compute and
    SQLite's inserts let go of the interpreter, so the two overlap on a second core.
    ``clean_block`` reads only what the batch knew when it began, never what its writes
    change, which is what makes this safe."""

    def step() -> tuple[Block, tuple[Any, Sequence[int]] | None] | None:
        block = next(blocks, None)
        if block is None:
            return None
        if block.batch is None or not hasattr(batch, "clean_block"):
            return block, None
        return block, cast(BlockBatch, batch).clean_block(block)

    with ThreadPoolExecutor(1, thread_name_prefix="clean") as pool:
        ahead = pool.submit(step)
        while (found := ahead.result()) is not None:
            ahead = pool.submit(step)
            yield found


def _shape_problem(values: Sequence[Any], width: int) -> str | None:
    if len(values) != width:
        return f"wrong number of fields ({len(values)} where the header has {width})"
    return None


def _usable(values: list[Any]) -> tuple[list[Any], list[tuple[int, str]]]:
    """``values`` with the cells no field can use emptied, and the position of each with
    the reason: text longer than :data:`MAX_FIELD_LENGTH` (a pasted document, a base64
    blob) or holding a NUL character (which PostgreSQL cannot store in text)."""
    usable = values
    unusable = []
    for position, value in enumerate(values):
        if not isinstance(value, str):
            continue
        if len(value) > MAX_FIELD_LENGTH:
            unusable.append((position, f"field too long (over {MAX_FIELD_LENGTH:,} characters)"))
        elif "\x00" in value:
            unusable.append((position, "NUL character in the field"))
        else:
            continue
        if usable is values:
            usable = list(values)
        usable[position] = None
    return usable, unusable
