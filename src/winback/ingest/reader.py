"""Reading input files as a stream of rows, whatever their format and dialect.

Text files are decoded by :mod:`winback.ingest.decoding` (UTF-8, cp1252, or both line
by line), the lines that needed it noted in :attr:`Source.notes`. A file with NUL bytes
or many control characters in its first 256 KB is binary, and refused. The delimiter is
the one among ``,`` ``;`` tab ``|`` that gives the first lines the same, largest number
of fields.

Every format gives the importers one shape: a header and ``(line number, values)`` rows
(:attr:`Source.rows`). CSV and Parquet also come as :attr:`Source.blocks`: Arrow record
batches of some hundred thousand rows with each row's line, which the importers clean a
whole column at a time. Parquet "line numbers" are 1-based row numbers; Parquet is read
by :mod:`winback.ingest.parquet_source`.

CSV blocks come from pyarrow's streaming reader, far faster than the ``csv`` module.
It does not tell the line a record starts on, so the line is counted: one per
record plus the line breaks inside its quoted values. Empty lines are not skipped (an
empty line in a file of several columns is a record of the wrong width, which stops the
Arrow reader). Whatever the Arrow reader cannot read (a record of the wrong width, a
field larger than its block), the ``csv`` module reads from that record on, with the
line numbers it counts itself, so every row still reaches the importer once.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from winback.errors import InputFileError
from winback.ingest.decoding import CHUNK, detect_encoding, text_stream, utf8_stream
from winback.ingest.json_lines import Unreadable, json_object
from winback.ingest.values import MAX_FIELD_LENGTH

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 256 * 1024
# Fields over MAX_FIELD_LENGTH reach the csv module cut (:func:`_capped_lines`); the
# limit only has to let a cut field through.
csv.field_size_limit(256 * 1024 * 1024)
# Rows per block: large enough that per-block costs vanish (each block of events is one
# transaction, and fewer commits rewrite the random pages of the digest index fewer
# times), small enough for flat memory.
BLOCK_ROWS = 262_144
# Bytes per read of Arrow's CSV reader. Its reading thread runs up to 32 reads ahead of
# the importer (a fixed queue, not an option: ARROW-12090), and each read stays in memory
# until its rows are taken, so large reads make a large resident set. Small reads,
# gathered into blocks of BLOCK_ROWS rows, keep it small (see bench/RESULTS.md); a record
# larger than one read goes to the ``csv`` module like any record Arrow cannot read.
_CSV_READ_BYTES = 2 * 1024 * 1024
# Bytes per row to estimate the rows of a text file by its size (events run about 80).
_BYTES_PER_ROW = 100
# A share of control characters (other than tab, line breaks and form feed) above which
# a file is binary: text files have none, random bytes about 10 %.
_BINARY_SHARE = 0.01
_CONTROLS = bytes([*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
Row = tuple[int, list[Any]]


@dataclass
class Block:
    """Consecutive rows of a file: an Arrow batch (one column per header column) with the
    line of each row, or plain :data:`Row` values where Arrow could not read the file."""

    batch: pa.RecordBatch | None
    lines: np.ndarray
    rows: list[Row]

    def values(self, positions: Iterable[int]) -> list[Row]:
        """The rows at ``positions`` of the batch as plain values, as :attr:`Source.rows`
        would give them."""
        assert self.batch is not None
        wanted = pa.array(list(positions), pa.int64())
        if len(wanted) == 0:
            return []
        columns = [column.take(wanted).to_pylist() for column in self.batch.columns]
        lines = self.lines[wanted.to_numpy()].tolist()
        return [(line, list(values)) for line, *values in zip(lines, *columns, strict=True)]


@dataclass
class Source:
    """An opened input: its header and its rows, read once."""

    path: Path
    format: str
    header: list[str]
    rows: Iterator[Row]
    size: int
    position: Callable[[], int]
    close: Callable[[], None]
    encoding: str | None = None
    delimiter: str | None = None
    # Expected type per column for Parquet (arrow type name), None for text formats.
    types: dict[str, str] | None = None
    # The same rows as Arrow blocks, for the importers that clean whole columns.
    blocks: Callable[[], Iterator[Block]] | None = None
    # How many rows the file holds (Parquet), or about how many by its size.
    estimated_rows: int = 0
    # Lines read other than as plain UTF-8 (line: what was done), for the report.
    notes: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.estimated_rows:
            self.estimated_rows = self.size // _BYTES_PER_ROW


def open_source(path: Path) -> Source:
    """Open ``path`` by its content: Parquet by its magic number, JSON Lines by its
    extension, anything else as delimited text."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, not a file")
    size = path.stat().st_size
    with path.open("rb") as probe:
        head = probe.read(SNIFF_BYTES)
    if head[:4] == b"PAR1":
        from winback.ingest.parquet_source import open_parquet  # builds on this module

        return open_parquet(path, size)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise InputFileError(f"{path}: the file is empty (no header line)")
    if b"\x00" in head:
        raise InputFileError(
            f"{path}: this is a binary file, not CSV, JSON Lines or Parquet (it contains NUL bytes)"
        )
    controls = len(head) - len(head.translate(None, _CONTROLS))
    if controls > _BINARY_SHARE * len(head):
        raise InputFileError(
            f"{path}: this is a binary file, not CSV, JSON Lines or Parquet "
            f"({controls:,} control characters in its first {len(head):,} bytes)"
        )
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _open_jsonl(path, size)
    return _open_csv(path, size, head)


def detect_delimiter(sample: str) -> str:
    """The delimiter that splits the first records into the same, largest field count."""
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        try:
            records = list(csv.reader(io.StringIO(sample), delimiter=delimiter, strict=False))
        except csv.Error:
            continue
        records = [record for record in records[:50] if record]
        if len(records) > 1:
            # Drop the last record: the sample may cut it short.
            records = records[:-1] if not sample.endswith(("\n", "\r")) else records
        if not records:
            continue
        width = len(records[0])
        consistent = sum(1 for record in records if len(record) == width)
        score = (consistent if width > 1 else 0, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _open_csv(path: Path, size: int, head: bytes) -> Source:
    encoding = detect_encoding(path)
    sample = head.decode("utf-8" if encoding == "utf-8-sig" else "cp1252", errors="replace")
    delimiter = detect_delimiter(sample)
    notes: dict[int, str] = {}
    raw, stream = utf8_stream(path, encoding, notes)
    text = text_stream(stream, newline="")
    reader = _csv_reader(text, delimiter)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        text.close()
        raise InputFileError(f"{path}: the file is empty (no header line)") from None
    except csv.Error as exc:
        text.close()
        raise InputFileError(f"{path}, line 1: unreadable header: {exc}") from None
    if not any(header):
        text.close()
        raise InputFileError(f"{path}: the first line is empty; it must name the columns")
    header_lines = reader.line_num
    counting = [raw]
    opened: list[io.TextIOWrapper] = [text]

    def reopen() -> io.RawIOBase:
        counting[0], stream = utf8_stream(path, encoding, notes)
        return stream

    def blocks() -> Iterator[Block]:
        yield from _csv_blocks(reopen, path, len(header), header_lines, delimiter)

    def close() -> None:
        for stream in opened:
            stream.close()
        counting[0].close()

    return Source(
        path=path,
        format="csv",
        header=header,
        rows=_csv_records(reader, path),
        size=size,
        position=lambda: counting[0].count,
        close=close,
        encoding=encoding,
        delimiter=delimiter,
        blocks=blocks,
        notes=notes,
    )


def _csv_reader(text: io.TextIOWrapper, delimiter: str) -> Any:
    """The ``csv`` module's reader of ``text``, over :func:`_capped_lines`."""
    return csv.reader(_capped_lines(text, delimiter), delimiter=delimiter, strict=False)


def _capped_lines(text: io.TextIOWrapper, delimiter: str) -> Iterator[str]:
    """The lines of ``text``, with every run of characters that holds no delimiter, quote
    or line break cut to :data:`MAX_FIELD_LENGTH` + 1 characters: the records and every
    field up to the limit are read as they are, and a field over it stays over it (the
    importer empties it with a warning) without the ``csv`` module holding it whole, at
    up to four bytes a character."""
    stops = re.compile(f'([{re.escape(delimiter)}"\r\n])')
    keep = MAX_FIELD_LENGTH + 1
    while piece := text.readline(CHUNK):
        if len(piece) <= keep:
            yield piece
            continue
        parts: list[str] = []
        run = 0
        while True:
            for at, part in enumerate(stops.split(piece)):
                if at % 2:  # a stop: the run ends
                    parts.append(part)
                    run = 0
                else:
                    parts.append(part[: max(0, keep - run)])
                    run += len(part)
            if piece.endswith(("\n", "\r")) or len(piece) < CHUNK:
                break
            piece = text.readline(CHUNK)
            if not piece:
                break
        yield "".join(parts)


def _csv_records(reader: Any, path: Path) -> Iterator[Row]:
    """The records of a ``csv`` reader with the line each starts on, without blank ones."""
    try:
        start = reader.line_num + 1
        for record in reader:
            if record and any(field.strip() for field in record):
                yield start, record
            start = reader.line_num + 1
    except csv.Error as exc:
        raise InputFileError(f"{path}, line {reader.line_num}: unreadable CSV: {exc}") from None


def is_blank(values: list[Any]) -> bool:
    """A CSV record with nothing in it (only empty or blank fields): not a row."""
    return not any(isinstance(value, str) and value.strip() for value in values)


def _csv_blocks(
    reopen: Callable[[], io.RawIOBase], path: Path, width: int, header_lines: int, delimiter: str
) -> Iterator[Block]:
    names = [f"c{position}" for position in range(width)]
    records = 0
    line = header_lines + 1
    raw = reopen()
    try:
        if header_lines == 1:
            try:
                reader = pacsv.open_csv(
                    raw,
                    read_options=pacsv.ReadOptions(
                        column_names=names,
                        skip_rows=1,
                        block_size=_CSV_READ_BYTES,
                        encoding="utf8",
                        use_threads=False,
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=False
                    ),
                    convert_options=pacsv.ConvertOptions(
                        column_types=dict.fromkeys(names, pa.string()),
                        strings_can_be_null=False,
                        quoted_strings_can_be_null=False,
                    ),
                )
                for batch in gathered(reader, BLOCK_ROWS):
                    lines, line = _record_lines(batch, line)
                    records += batch.num_rows
                    keep = _not_blank(batch)
                    if keep is not None:
                        batch, lines = (
                            batch.filter(keep),
                            lines[keep.to_numpy(zero_copy_only=False)],
                        )
                    yield Block(batch, lines, [])
                return
            except pa.ArrowInvalid:
                pass  # the csv module reads the rest, from the first record not yielded
        raw.close()
        raw = reopen()
        reader = _csv_reader(text_stream(raw, newline=""), delimiter)
        next(reader, None)
        for _ in range(records):
            next(reader, None)
        rows: list[Row] = []
        for row in _csv_records(reader, path):
            rows.append(row)
            if len(rows) >= BLOCK_ROWS:
                yield Block(None, np.empty(0, np.int64), rows)
                rows = []
        yield Block(None, np.empty(0, np.int64), rows)
    finally:
        raw.close()


def gathered(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """``batches`` joined into batches of at least ``rows`` rows (the last one may have
    fewer). The rows gathered when ``batches`` fails are yielded before its error."""
    gathered: list[pa.RecordBatch] = []
    count = 0
    try:
        for batch in batches:
            gathered.append(batch)
            count += batch.num_rows
            if count >= rows:
                yield pa.concat_batches(gathered)
                gathered, count = [], 0
    except pa.ArrowInvalid:
        if gathered:
            yield pa.concat_batches(gathered)
        raise
    if gathered:
        yield pa.concat_batches(gathered)


def _record_lines(batch: pa.RecordBatch, first: int) -> tuple[np.ndarray, int]:
    """The line each record of ``batch`` starts on, counting the line breaks inside
    quoted values as the ``csv`` module does (``\r\n``, ``\n`` and ``\r`` each end a
    line), and the line after the batch."""
    breaks = np.zeros(batch.num_rows, np.int64)
    for column in batch.columns:
        if (
            pc.any(pc.match_substring(column, "\n")).as_py()
            or pc.any(pc.match_substring(column, "\r")).as_py()
        ):
            breaks += pc.count_substring_regex(column, "\r\n|\r|\n").to_numpy()
    ends = np.cumsum(breaks + 1)
    return first + ends - breaks - 1, first + int(ends[-1]) if len(ends) else first


def _not_blank(batch: pa.RecordBatch) -> pa.BooleanArray | None:
    """Which records have something in them, or None when all have: a record whose
    fields are all empty or spaces is no row (as in :func:`_csv_records`; fields blank
    only by rarer white space are left to :func:`is_blank`)."""
    blank = pc.match_substring_regex(batch.column(0), "^[ \t]*$")
    if not pc.any(blank).as_py():
        return None
    for column in batch.columns[1:]:
        blank = pc.and_(blank, pc.match_substring_regex(column, "^[ \t]*$"))
    return pc.invert(blank)


def _open_jsonl(path: Path, size: int) -> Source:
    """JSON Lines: the header is the union of the keys of the first 1,000 objects; a key
    that appears later still counts (its value lands in the row's extras)."""
    encoding = detect_encoding(path)
    notes: dict[int, str] = {}
    header: list[str] = []
    with text_stream(utf8_stream(path, encoding, {})[1]) as stream:
        for number, line in enumerate(stream):
            if number >= 1000:
                break
            record = json_object(line)
            if isinstance(record, dict):
                header.extend(key for key in record if key not in header)
    if not header:
        raise InputFileError(f"{path}: no JSON object found in the first lines")
    raw, recoded = utf8_stream(path, encoding, notes)
    text = text_stream(recoded)

    def rows() -> Iterator[Row]:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            record = json_object(line)
            if isinstance(record, Unreadable):
                yield number, [record]
                continue
            yield number, [record.get(name) for name in header]

    return Source(
        path,
        "jsonl",
        header,
        rows(),
        size,
        lambda: raw.count,
        text.close,
        encoding=encoding,
        notes=notes,
    )
