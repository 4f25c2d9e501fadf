"""Cleaning a whole Arrow column at once, for the rows whose values have the plain shapes
nearly every file has. Each function returns the cleaned values and a mask of the rows
it cannot vouch for; those rows go through the row-by-row parsers of
:mod:`winback.ingest.values`, which give the reason to reject them or the rarer forms
(``dd/mm/yyyy``, ``1 234,50 €``, Unix seconds). So a row cleaned here is cleaned to
exactly what the row path would give, and a row that would be rejected never is here.

Written on Arrow compute and NumPy rather than DuckDB: the work is per value, with no
join or grouping that a query engine would do better, and Arrow's kernels keep the
blocks zero-copy.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.ingest.values import MAX_FIELD_LENGTH

# Exactly the characters ``str.strip()`` removes, so a trimmed cell is the row path's.
PY_SPACE = "".join(chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace())

_HOUR_MINUTE = r"(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,6})?)?"
_ISO_DATE = r"[1-9]\d{3}-\d{2}-\d{2}"
ISO_ZONED = rf"^{_ISO_DATE}[T ]{_HOUR_MINUTE}(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
ISO_NAIVE = rf"^{_ISO_DATE}(?:[T ]{_HOUR_MINUTE})?$"
_PLAIN_AMOUNT = r"^\d{1,15}(?:\.\d{1,6})?$"
_EPOCH = datetime(1970, 1, 1)
_YEAR_1000 = (datetime(1000, 1, 1) - _EPOCH) // timedelta(microseconds=1)


def is_text(column: pa.Array) -> bool:
    return bool(pa.types.is_string(column.type) or pa.types.is_large_string(column.type))


def plain_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column without dictionary encoding, as one array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column


def trimmed(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """A text column stripped as ``str.strip`` does, and which cells are absent (null,
    empty or blank: the row path ignores them)."""
    stripped = pc.utf8_trim(column, characters=PY_SPACE)
    absent = pc.fill_null(pc.equal(pc.utf8_length(stripped), 0), True)
    return stripped, absent.to_numpy(zero_copy_only=False)


def unusable(batch: pa.RecordBatch) -> np.ndarray:
    """The rows with a text cell no field can use: longer than
    :data:`~winback.ingest.values.MAX_FIELD_LENGTH` characters or holding a NUL (the row
    path empties it with a warning)."""
    found = np.zeros(batch.num_rows, bool)
    for column in batch.columns:
        if is_text(column):
            found |= mask(pc.greater(pc.utf8_length(column), MAX_FIELD_LENGTH))
            found |= mask(pc.match_substring(column, "\x00"))
    return found


def cells(column: pa.Array) -> pa.Array:
    """A column as the row path sees its cells: blank text (empty or spaces) is null."""
    if not is_text(column):
        return column
    _, absent = trimmed(column)
    return pc.if_else(pa.array(absent), pa.scalar(None, column.type), column)


def by_distinct(
    columns: Sequence[pa.Array], function: Callable[..., Any]
) -> tuple[np.ndarray, np.ndarray]:
    """``function(*cells)`` of each row (cells as :func:`cells` gives them, None where
    absent), called once per distinct combination of cells: a row-path parser applied to
    a column of few distinct values (countries, tags, statuses) at the cost of those
    values. Returns the results as an object array, rows sharing one result object, and
    the rows where ``function`` raised ``ValueError`` (their result is None)."""
    rows = len(columns[0])
    try:
        encoded = [pc.dictionary_encode(cells(column)) for column in columns]
    except pa.ArrowNotImplementedError:  # lists or structs (Parquet): one call per row
        return _each_row([cells(column).to_pylist() for column in columns], function, rows)
    words = [[*part.dictionary.to_pylist(), None] for part in encoded]
    codes = [
        pc.fill_null(part.indices, len(known) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
        for part, known in zip(encoded, words, strict=True)
    ]
    # One number per combination of cells, unless there are too many to count on 63 bits.
    sizes = [len(known) for known in words]
    if len(codes) == 1:
        combinations, inverse = np.arange(sizes[0])[:, None], codes[0]
    elif np.prod(np.array(sizes, float)) < 2**62:
        key = np.zeros(rows, np.int64)
        for part, size in zip(codes, sizes, strict=True):
            key = key * size + part
        unique, inverse = np.unique(key, return_inverse=True)
        combinations = np.stack(np.unravel_index(unique, sizes), axis=1)
    else:
        combinations, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    results, bad = _each_row(
        [[known[code] for code in combinations[:, at]] for at, known in enumerate(words)],
        function,
        len(combinations),
    )
    inverse = inverse.reshape(-1)
    return results[inverse], bad[inverse]


def _each_row(
    columns: Sequence[Sequence[Any]], function: Callable[..., Any], rows: int
) -> tuple[np.ndarray, np.ndarray]:
    results = np.full(rows, None, object)
    bad = np.zeros(rows, bool)
    for at, values in enumerate(zip(*columns, strict=True)):
        try:
            results[at] = function(*values)
        except ValueError:
            bad[at] = True
    return results, bad


def mask(values: pa.Array) -> np.ndarray:
    """A boolean Arrow array as a NumPy mask, null counting as false."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False))


Word = TypeVar("Word", bound=Hashable)


def words(column: pa.Array, parse: Callable[[str], Word], codes: Mapping[Word, int]) -> np.ndarray:
    """The code of each cell's word, parsed once per distinct word with ``parse`` (a
    row-path parser); -1 where ``parse`` refuses the word or the cell is null."""
    encoded = pc.dictionary_encode(column)
    table = []
    for word in encoded.dictionary.to_pylist():
        try:
            table.append(codes[parse(word)])
        except (ValueError, KeyError):
            table.append(-1)
    indices = pc.fill_null(encoded.indices, len(table)).to_numpy(zero_copy_only=False)
    return np.asarray(np.append(np.array(table, np.int64), -1)[indices])


def utc_micros(column: pa.Array, zone: str, until: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Each cell as microseconds since the epoch in UTC, and the rows left to the row
    parser: other text forms, numbers, nanosecond timestamps, local times that a change
    of clock makes ambiguous or skips, and moments after ``until`` (naive UTC)."""
    rows = len(column)
    micros = np.zeros(rows, np.int64)
    slow = np.ones(rows, bool)
    kind = column.type
    if is_text(column):
        text, _ = trimmed(column)
        for pattern, target in (
            (ISO_ZONED, pa.timestamp("us", tz="UTC")),
            (ISO_NAIVE, pa.timestamp("us")),
        ):
            wanted = mask(pc.match_substring_regex(text, pattern))
            if not wanted.any():
                continue
            try:
                parsed = text.filter(pa.array(wanted)).cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue  # a day that does not exist somewhere: the row parser says which
            if target.tz is None:
                values, ok = _local(parsed, zone)
            else:
                values, ok = parsed.cast(pa.int64()).to_numpy(), np.ones(len(parsed), bool)
            micros[wanted] = values
            slow[np.flatnonzero(wanted)[ok]] = False
    elif pa.types.is_timestamp(kind) and kind.unit in ("s", "ms", "us"):
        moments = column.cast(pa.timestamp("us", tz=kind.tz))
        valid = mask(pc.is_valid(moments))
        if kind.tz is not None:
            micros = pc.fill_null(moments.cast(pa.int64()), 0).to_numpy()
            slow = ~valid
        else:
            values, ok = _local(pc.fill_null(moments, 0), zone)
            micros, slow = values, ~(valid & ok)
    elif pa.types.is_date(kind):
        moments = pc.fill_null(column.cast(pa.timestamp("us")), 0)
        values, ok = _local(moments, zone)
        micros, slow = values, ~(mask(pc.is_valid(column)) & ok)
    limit = (until - _EPOCH) // timedelta(microseconds=1)
    # Years before 1000 (a typo, mostly) are left to the row path, digits and all.
    slow |= (micros > limit) | (micros < _YEAR_1000)
    return micros, slow


def _local(moments: pa.Array, zone: str) -> tuple[np.ndarray, np.ndarray]:
    """Naive local times read in ``zone`` as UTC microseconds, and which are unambiguous
    (the row path's zoneinfo and Arrow agree on every other local time)."""
    if zone in ("UTC", "Etc/UTC"):
        return moments.cast(pa.int64()).to_numpy(), np.ones(len(moments), bool)
    early = pc.assume_timezone(moments, zone, ambiguous="earliest", nonexistent="earliest")
    late = pc.assume_timezone(moments, zone, ambiguous="latest", nonexistent="latest")
    early_values = early.cast(pa.int64()).to_numpy()
    return early_values, early_values == late.cast(pa.int64()).to_numpy()


def amounts(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Amounts as float64 (null where absent), and the rows left to the row parser: text
    other than plain ``123.45``, and negative or not finite numbers."""
    rows = len(column)
    if is_text(column):
        text, absent = trimmed(column)
        plain = mask(pc.match_substring_regex(text, _PLAIN_AMOUNT))
        values = pc.if_else(pa.array(plain), text, None).cast(pa.float64())
        return values, ~absent & ~plain
    if pa.types.is_floating(column.type) or pa.types.is_integer(column.type):
        values = column.cast(pa.float64(), safe=False)  # as float() rounds a large integer
        finite = pc.fill_null(pc.is_finite(values), True)
        bad = ~mask(finite) | mask(pc.less(values, 0))
        return values, bad
    return pa.nulls(rows, pa.float64()), mask(pc.is_valid(column))


def flags(column: pa.Array, parse: Callable[[Any], bool]) -> tuple[pa.Array, np.ndarray]:
    """Yes/no cells as booleans (null where absent), and the rows ``parse`` refuses."""
    if pa.types.is_boolean(column.type):
        return column, np.zeros(len(column), bool)
    if pa.types.is_integer(column.type):
        return pc.not_equal(column, 0), np.zeros(len(column), bool)
    if is_text(column):
        text, absent = trimmed(column)
        codes = words(text, parse, {False: 0, True: 1})
        values = pc.if_else(pa.array(absent), None, pa.array(codes == 1))
        return values, ~absent & (codes < 0)
    return pa.nulls(len(column), pa.bool_()), mask(pc.is_valid(column))


def short_text(column: pa.Array, limit: int) -> tuple[pa.Array, np.ndarray]:
    """Trimmed text (null where absent), and the rows longer than ``limit`` characters
    (the row path cuts them; cutting by code point is left to it)."""
    if not is_text(column):
        return pa.nulls(len(column), pa.string()), mask(pc.is_valid(column))
    text, absent = trimmed(column)
    values = pc.if_else(pa.array(absent), None, text)
    return values, mask(pc.greater(pc.utf8_length(text), limit))
