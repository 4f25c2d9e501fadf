"""Reading input files as a stream of rows, whatever their format and dialect.

CSV is read with the standard ``csv`` module rather than pyarrow's reader because only it
tells the line number each record starts on, which the quarantine promises, and keeps
quoted newlines and odd dialects intact. The encoding is UTF-8 (with or without a byte
order mark) when the whole file decodes as UTF-8, and cp1252 otherwise: that is what
French Excel writes, and cp1252 is a superset of Latin-1's printable characters. The
delimiter is the one among ``,`` ``;`` tab ``|`` that gives the first lines the same,
largest number of fields.

JSON Lines and Parquet are read the same way, so the importers see one shape: a header
and ``(line number, values)`` rows. Parquet "line numbers" are 1-based row numbers.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from winback.errors import InputFileError

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 256 * 1024
# Long fields are parsed whole so the importer can quarantine the row with a reason
# instead of the csv module aborting the file.
csv.field_size_limit(256 * 1024 * 1024)
_CHUNK = 1024 * 1024

Row = tuple[int, list[Any]]


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


class _CountingReader(io.RawIOBase):
    """A raw file that counts the bytes read, for the progress bar."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


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
        return _open_parquet(path, size)
    if not head.strip(b"\xef\xbb\xbf \r\n\t"):
        raise InputFileError(f"{path}: the file is empty (no header line)")
    if b"\x00" in head:
        raise InputFileError(
            f"{path}: this is a binary file, not CSV, JSON Lines or Parquet (it contains NUL bytes)"
        )
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return _open_jsonl(path, size)
    return _open_csv(path, size, head)


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the whole file is UTF-8 (a BOM is skipped), else ``cp1252``."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return "cp1252"
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8-sig"


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
    sample = head.decode(encoding, errors="replace")
    delimiter = detect_delimiter(sample)
    raw = _CountingReader(path.open("rb"))
    text = io.TextIOWrapper(io.BufferedReader(raw, _CHUNK), encoding=encoding, newline="")
    reader = csv.reader(text, delimiter=delimiter, strict=False)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        text.close()
        raise InputFileError(f"{path}: the file is empty (no header line)") from None
    if not any(header):
        text.close()
        raise InputFileError(f"{path}: the first line is empty; it must name the columns")

    def rows() -> Iterator[Row]:
        try:
            start = reader.line_num + 1
            for record in reader:
                if record and any(field.strip() for field in record):
                    yield start, record
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InputFileError(f"{path}, line {reader.line_num}: unreadable CSV: {exc}") from None

    return Source(
        path=path,
        format="csv",
        header=header,
        rows=rows(),
        size=size,
        position=lambda: raw.count,
        close=text.close,
        encoding=encoding,
        delimiter=delimiter,
    )


def _open_jsonl(path: Path, size: int) -> Source:
    """JSON Lines: the header is the union of the keys of the first 1,000 objects; a key
    that appears later still counts (its value lands in the row's extras)."""
    encoding = detect_encoding(path)
    header: list[str] = []
    with path.open(encoding=encoding) as stream:
        for number, line in enumerate(stream):
            if number >= 1000:
                break
            try:
                record = json.loads(line) if line.strip() else {}
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict):
                header.extend(key for key in record if key not in header)
    if not header:
        raise InputFileError(f"{path}: no JSON object found in the first lines")
    raw = _CountingReader(path.open("rb"))
    text = io.TextIOWrapper(io.BufferedReader(raw, _CHUNK), encoding=encoding)

    def rows() -> Iterator[Row]:
        for number, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, [_Unreadable(f"not valid JSON: {exc.msg}")]
                continue
            if not isinstance(record, dict):
                yield number, [_Unreadable("not a JSON object")]
                continue
            yield number, [record.get(name) for name in header]

    return Source(
        path, "jsonl", header, rows(), size, lambda: raw.count, text.close, encoding=encoding
    )


class _Unreadable(str):
    """A row that could not be parsed at all; the importers quarantine it with this text."""


def unreadable_reason(values: list[Any]) -> str | None:
    """The reason a row from :func:`open_source` could not be parsed, if it could not."""
    if len(values) == 1 and isinstance(values[0], _Unreadable):
        return str(values[0])
    return None


def _open_parquet(path: Path, size: int) -> Source:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputFileError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    header = list(schema.names)
    types = {field.name: str(field.type) for field in schema}
    done = [0]

    def rows() -> Iterator[Row]:
        number = 0
        for batch in parquet.iter_batches(batch_size=65_536):
            columns = [column.to_pylist() for column in batch.columns]
            for values in zip(*columns, strict=True):
                number += 1
                yield number, list(values)
            done[0] = number

    total = max(parquet.metadata.num_rows, 1)
    return Source(
        path,
        "parquet",
        header,
        rows(),
        size,
        lambda: done[0] * size // total,
        parquet.close,
        types=types,
    )
