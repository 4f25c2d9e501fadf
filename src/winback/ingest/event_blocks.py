"""The block path of the events import: a block of a CSV or Parquet file cleaned a whole
column at a time (Arrow compute), contacts resolved against sorted key arrays, and the
digests that make an event the same event twice (:func:`event_key`) built over
Arrow-joined strings. The rows these checks cannot vouch for are left to the row path
(:meth:`winback.ingest.events.EventBatch.clean`); the constants both paths share live
here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from winback.clock import from_db
from winback.compliance.refusals import CONSIDERED
from winback.domain import SENDING_CHANNELS, Channel, EventType
from winback.ingest import columnar as col
from winback.ingest import values as v
from winback.ingest.reader import Block

if TYPE_CHECKING:
    from winback.ingest.events import EventBatch

_KINDS = list(EventType)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_CHANNELS = list(Channel)
_CHANNEL_CODES = {channel: code for code, channel in enumerate(_CHANNELS)}
_DEFAULT_CHANNEL_CODES = np.array([_CHANNEL_CODES[v.DEFAULT_CHANNEL[kind]] for kind in _KINDS])
_REFUSAL_KINDS = np.array([kind in CONSIDERED for kind in _KINDS])
_SENDING_CHANNELS = np.array([channel in SENDING_CHANNELS for channel in _CHANNELS])
# Text fields: (field, longest value kept), on both paths.
TEXT_LIMITS = {
    "campaign": 200,
    "message_id": 200,
    "user_agent": 500,
    "url": 4000,
    "body": 4000,
    "discount_code": 200,
}
# A currency is kept upper-cased, as its first three characters (an ISO 4217 code).
CURRENCY_LENGTH = 3


#: The Arrow type of each column an import fills (:data:`winback.store.contacts.EVENT_FIELDS`).
EVENT_TYPES = {
    "contact_id": pa.int64(),
    "type": pa.string(),
    "channel": pa.string(),
    "occurred_at": pa.timestamp("us"),
    "amount": pa.float64(),
    "currency": pa.string(),
    "campaign": pa.string(),
    "message_id": pa.string(),
    "machine_open": pa.bool_(),
    "user_agent": pa.string(),
    "url": pa.string(),
    "body": pa.string(),
    "discount_code": pa.string(),
    "source": pa.string(),
    "dedup_key": pa.binary(),
}


@dataclass
class CleanBlock:
    """The rows of a block cleaned column-wise: a table of the batch's ``fields`` (typed
    as :data:`EVENT_TYPES`) and ``line``, each row's line in the file; the refusals among
    them as ``apply_refusals`` reads them, and the discount codes its purchases used
    (code, when)."""

    table: pa.Table
    refusals: list[tuple[int, dict[str, Any]]]
    codes: list[tuple[str, datetime]]


_EPOCH = datetime(1970, 1, 1)
_KEY_TIME = struct.Struct(">q")


def event_key(
    contact_id: int,
    kind: str,
    channel: str,
    occurred_at: datetime,
    amount: float | None,
    campaign: str | None,
    message_id: str | None,
) -> bytes:
    """The 16-byte key that makes an event the same event twice: the second it happened
    (6 bytes, big-endian) then a 10-byte digest of what it is. The time comes first so
    that a file in time order writes the unique index near its end: keys that are only a
    random digest send every insert to a random page of the index (slower, and worse
    once the index outgrows the page cache: see bench/RESULTS.md)."""
    text = (
        f"{contact_id}|{kind}|{channel}|{occurred_at.isoformat()}|{amount}|{campaign}|{message_id}"
    )
    second = (occurred_at - _EPOCH) // timedelta(seconds=1)
    return _KEY_TIME.pack(second)[2:] + hashlib.blake2b(text.encode(), digest_size=10).digest()


def clean_block(importer: EventBatch, block: Block) -> tuple[CleanBlock, Sequence[int]]:
    """The rows of ``block`` the column-wise checks vouch for, cleaned, and the
    positions of the others (left to :meth:`EventBatch.clean`)."""
    assert block.batch is not None
    batch = block.batch
    fields = importer.columns.fields
    rows = batch.num_rows
    slow = col.unusable(batch)

    def column(field: str) -> pa.Array | None:
        return col.plain_array(batch.column(fields[field])) if field in fields else None

    contact_ids = np.full(rows, -1, np.int64)
    no_email = np.ones(rows, bool)
    if (emails := column("email")) is not None:
        if col.is_text(emails):
            text, no_email = col.trimmed(emails)
            keys = pc.if_else(pc.string_is_ascii(text), pc.ascii_lower(text), None)
            contact_ids = importer.by_email.lookup(keys)
        else:
            no_email = ~col.mask(pc.is_valid(emails))
    if (phones := column("phone")) is not None and col.is_text(phones):
        text, _ = col.trimmed(phones)
        by_phone = importer.by_phone.lookup(text)
        contact_ids = np.where(no_email, by_phone, contact_ids)
    slow |= contact_ids < 0

    types = column("type")
    if types is None or not col.is_text(types):
        kinds = np.full(rows, -1)
    else:
        kinds = col.words(col.trimmed(types)[0], v.parse_event_type, _KIND_CODES)
    slow |= kinds < 0
    kinds = np.maximum(kinds, 0)

    times = column("occurred_at")
    if times is None:
        micros, late = np.zeros(rows, np.int64), np.ones(rows, bool)
    else:
        micros, late = col.utc_micros(times, str(importer.tz), importer.now + v.CLOCK_SKEW)
    slow |= late

    channels = _DEFAULT_CHANNEL_CODES[kinds]
    if (given := column("channel")) is not None:
        if col.is_text(given):
            text, absent = col.trimmed(given)
            named = col.words(text, v.parse_channel, _CHANNEL_CODES)
            slow |= ~absent & (named < 0)
            channels = np.where(absent, channels, named)
        else:
            slow |= col.mask(pc.is_valid(given))

    amounts = pa.nulls(rows, pa.float64())
    if (given := column("amount")) is not None:
        amounts, bad = col.amounts(given)
        slow |= bad
    currencies = pa.nulls(rows, pa.string())
    if (given := column("currency")) is not None:
        currencies, long = col.short_text(given, 1_000_000)
        slow |= col.mask(pc.invert(pc.string_is_ascii(pc.fill_null(currencies, ""))))
        slow |= long
        currencies = pc.utf8_slice_codeunits(pc.ascii_upper(currencies), 0, CURRENCY_LENGTH)
    texts = {}
    for field, limit in TEXT_LIMITS.items():
        texts[field] = pa.nulls(rows, pa.string())
        if (given := column(field)) is not None:
            texts[field], long = col.short_text(given, limit)
            slow |= long
    machine = pa.nulls(rows, pa.bool_())
    if (given := column("machine_open")) is not None:
        machine, bad = col.flags(given, v.parse_bool)
        slow |= bad

    fast = ~slow
    keep = pa.array(fast)
    moments = pa.array(micros[fast], pa.timestamp("us"))
    stored_at = moments.cast(pa.string())  # as sqlite_time writes it
    kind_words = np.array([kind.value for kind in _KINDS], object)[kinds[fast]]
    channel_words = np.array([c.value for c in _CHANNELS], object)[channels[fast]]
    amounts = amounts.filter(keep)
    campaigns = texts["campaign"].filter(keep)
    message_ids = texts["message_id"].filter(keep)
    bodies = texts["body"].filter(keep)
    purchase = pa.array(kinds[fast] == _KIND_CODES[EventType.PURCHASE])
    codes = pc.if_else(purchase, texts["discount_code"].filter(keep), None)
    ids = contact_ids[fast]
    digests = _digests(
        ids,
        kind_words,
        channel_words,
        micros[fast],
        stored_at,
        amounts,
        campaigns,
        message_ids,
    )
    given_columns: dict[str, Callable[[], Any]] = {
        "contact_id": lambda: ids,
        "type": lambda: kind_words,
        "channel": lambda: channel_words,
        "occurred_at": lambda: moments,
        "amount": lambda: amounts,
        "currency": lambda: currencies.filter(keep),
        "campaign": lambda: campaigns,
        "message_id": lambda: message_ids,
        "machine_open": lambda: machine.filter(keep),
        "user_agent": lambda: texts["user_agent"].filter(keep),
        "url": lambda: texts["url"].filter(keep),
        "body": lambda: bodies,
        "discount_code": lambda: codes,
        "source": lambda: np.full(len(ids), importer.source, object),
        "dedup_key": lambda: digests,
    }
    lines = block.lines[fast]
    table = pa.table(
        [_typed(given_columns[name](), EVENT_TYPES[name]) for name in importer.fields]
        + [pa.array(lines, pa.int64())],
        names=[*importer.fields, "line"],
    )
    refused = np.flatnonzero(_REFUSAL_KINDS[kinds[fast]] & _SENDING_CHANNELS[channels[fast]])
    refusals = [
        (
            int(lines[at]),
            {
                "contact_id": int(ids[at]),
                "type": kind_words[at],
                "channel": channel_words[at],
                "occurred_at": moments[int(at)].as_py(),
                "body": bodies[int(at)].as_py(),
                "dedup_key": digests[int(at)],
            },
        )
        for at in refused
    ]
    given_codes = np.flatnonzero(col.mask(pc.not_equal(codes, "")))
    used = [(codes[at].as_py(), from_db(moments[at].as_py())) for at in given_codes.tolist()]
    cleaned = CleanBlock(table, refusals, used)
    return cleaned, np.flatnonzero(slow).tolist()


def _digests(
    ids: np.ndarray,
    kinds: np.ndarray,
    channels: np.ndarray,
    micros: np.ndarray,
    stored_at: pa.Array,
    amounts: pa.Array,
    campaigns: pa.Array,
    message_ids: pa.Array,
) -> list[bytes]:
    """:func:`event_key` of many rows: the same text, joined by Arrow, hashed here."""
    iso = pc.replace_substring_regex(
        pc.replace_substring(stored_at, " ", "T", max_replacements=1), r"\.000000$", ""
    )
    texts = pc.binary_join_element_wise(
        pa.array(ids).cast(pa.string()),
        pa.array(kinds, pa.string()),
        pa.array(channels, pa.string()),
        iso,
        _amount_texts(amounts),
        pc.fill_null(campaigns, "None"),
        pc.fill_null(message_ids, "None"),
        "|",
    )
    seconds = np.floor_divide(micros, 1_000_000).astype(">i8").tobytes()
    blake2b = hashlib.blake2b
    return [
        seconds[8 * row + 2 : 8 * row + 8] + blake2b(text, digest_size=10).digest()
        for row, text in enumerate(texts.cast(pa.binary()).to_pylist())
    ]


def _amount_texts(given: pa.Array) -> pa.Array:
    """``str(amount)`` of each amount (Python's float repr, "None" when absent)."""
    if given.null_count == len(given):
        return pa.array(np.full(len(given), "None", object), pa.string())
    texts = pa.array([str(amount) for amount in given.drop_null().to_pylist()], pa.string())
    present = pc.is_valid(given)
    spread = pc.replace_with_mask(pa.nulls(len(given), pa.string()), present, texts)
    return pc.fill_null(spread, "None")


def _typed(values: Any, kind: pa.DataType) -> pa.Array:
    """``values`` (an Arrow array, a NumPy array or a list) as an Arrow array of ``kind``."""
    return values.cast(kind) if isinstance(values, pa.Array) else pa.array(values, kind)
