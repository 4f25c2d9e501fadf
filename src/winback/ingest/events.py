"""Importing events: resolve each row to a known contact by email or phone, clean its
type, time, channel and amount, and store it once. Importing the same file twice adds
nothing: each event has a digest of what makes it the same event (contact, type,
channel, time, amount, campaign, message) and the store ignores a digest it holds.

Refusals among the events (unsubscribe, hard bounce, complaint on email or SMS) change
the contact's channel status at once: nobody is written to after saying no.

CSV and Parquet files are cleaned a block at a time (:meth:`EventBatch.clean_block`):
whole columns through Arrow compute, contacts resolved against sorted key arrays, the
digests computed over Arrow-built strings. The rows those checks cannot vouch for take
the row path (:meth:`EventBatch.clean`), and both are written in file order.

A purchase that carries a discount code (a ``code`` / ``discount_code`` / ``Discount
Code`` column) keeps it in ``events.discount_code``; a code winback issued is redeemed in
the same transaction (:func:`winback.journeys.offers.redeem_codes`), as a shop's order
export does. Other rows' codes are not kept: only a purchase redeems a coupon.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from winback.addresses import normalise_email, normalise_phone
from winback.clock import from_db, to_db
from winback.compliance.refusals import CONSIDERED, apply_refusals
from winback.domain import SENDING_CHANNELS, Channel, EventType
from winback.errors import InputFileError
from winback.events import record_event_rows, record_events
from winback.ingest import columnar as col
from winback.ingest import values as v
from winback.ingest.columns import EVENT_ALIASES, ColumnMap
from winback.ingest.keys import contact_keys
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Refusals,
    mapped_source,
    run,
)
from winback.ingest.reader import Block, Source
from winback.journeys.offers import redeem_codes
from winback.store import contacts as store
from winback.workspace import Workspace

# Arrow types each field accepts in a Parquet file (by the start of the type's name).
_PARQUET_TYPES = {
    "email": ("string", "large_string"),
    "phone": ("string", "large_string", "int"),
    "type": ("string", "large_string", "dictionary"),
    "occurred_at": ("timestamp", "date", "string", "large_string", "int", "double"),
    "channel": ("string", "large_string", "dictionary"),
    "amount": ("double", "float", "int", "decimal", "string", "large_string"),
    "machine_open": ("bool", "int", "string"),
}


_KINDS = list(EventType)
_KIND_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_CHANNELS = list(Channel)
_CHANNEL_CODES = {channel: code for code, channel in enumerate(_CHANNELS)}
_DEFAULT_CHANNEL_CODES = np.array([_CHANNEL_CODES[v.DEFAULT_CHANNEL[kind]] for kind in _KINDS])
_REFUSAL_KINDS = np.array([kind in CONSIDERED for kind in _KINDS])
_SENDING_CHANNELS = np.array([channel in SENDING_CHANNELS for channel in _CHANNELS])
# Text fields: (field, longest value kept), on both paths.
_TEXT_LIMITS = {
    "campaign": 200,
    "message_id": 200,
    "user_agent": 500,
    "url": 4000,
    "body": 4000,
    "discount_code": 200,
}
# A currency is kept upper-cased, as its first three characters (an ISO 4217 code).
_CURRENCY_LENGTH = 3


@dataclass
class CleanBlock:
    """The rows of a block cleaned column-wise: insert tuples of the batch's ``fields``
    (dedup key last), each row's line, the refusals among them as ``apply_refusals``
    reads them, and the discount codes its purchases used (code, when)."""

    rows: list[tuple[Any, ...]]
    lines: np.ndarray
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
    random digest send every insert to a random page of the index (1.7× slower at 2M
    events on this machine, and worse once the index outgrows the page cache)."""
    text = (
        f"{contact_id}|{kind}|{channel}|{occurred_at.isoformat()}|{amount}|{campaign}|{message_id}"
    )
    second = (occurred_at - _EPOCH) // timedelta(seconds=1)
    return _KEY_TIME.pack(second)[2:] + hashlib.blake2b(text.encode(), digest_size=10).digest()


class EventBatch:
    def __init__(
        self,
        workspace: Workspace,
        columns: ColumnMap,
        now: datetime,
        source: str,
        connection: Connection,
    ) -> None:
        """``connection``: the import's (:func:`winback.store.contacts.bulk_events`),
        one transaction per batch written."""
        self.workspace = workspace
        self.connection = connection
        self.columns = columns
        self.now_aware = now
        self.now = to_db(now)
        self.source = source
        self.tz = ZoneInfo(workspace.config.workspace.timezone)
        self.region = workspace.config.workspace.default_region
        with connection.begin():
            self.by_email, self.by_phone = contact_keys(connection)
        self.strays: list[dict[str, Any]] = []
        # The columns this file can fill, the digest last; the others stay NULL.
        self.fields = [
            name
            for name in store.EVENT_FIELDS
            if name not in EVENT_ALIASES
            or name in ("type", "occurred_at", "channel")
            or columns.has(name)
        ]

    def clean(self, values: list[Any], warnings: list[v.FieldWarning]) -> dict[str, Any]:
        """One row as an event; raises ``ValueError`` with the reason to reject it (no
        known contact, no usable type or time, a purchase without a usable amount), adds
        the fields it leaves empty to ``warnings``."""
        cell = dict.fromkeys(EVENT_ALIASES) | self.columns.cells(values)
        try:
            contact_id = self.contact(cell["email"], cell["phone"], warnings)
        except ValueError as exc:
            if self._stray_refusal(cell):
                raise ValueError(f"{exc}; its refusal is on the suppression list") from exc
            raise
        if cell["type"] is None:
            raise ValueError("no event type")
        kind = v.parse_event_type(str(cell["type"]))
        if cell["occurred_at"] is None:
            raise ValueError("no date")
        occurred_at = v.parse_datetime(cell["occurred_at"], self.tz)
        v.check_not_future(occurred_at, self.now)
        channel = v.DEFAULT_CHANNEL[kind]
        if cell["channel"] is not None:
            channel = (
                v.optional("channel", v.parse_channel, str(cell["channel"]), warnings) or channel
            )
        amount = None
        if cell["amount"] is not None:
            if kind == EventType.PURCHASE:
                amount = v.parse_amount(cell["amount"])
            else:
                amount = v.optional("amount", v.parse_amount, cell["amount"], warnings)
        currency, machine = cell["currency"], cell["machine_open"]
        if machine is not None:
            machine = v.optional("machine_open", v.parse_bool, machine, warnings)
        texts = {field: _text(cell[field], limit) for field, limit in _TEXT_LIMITS.items()}
        row: dict[str, Any] = {
            "contact_id": contact_id,
            "type": kind.value,
            "channel": str(channel),
            "occurred_at": occurred_at,
            "amount": amount,
            "currency": _text(currency, _CURRENCY_LENGTH, upper=True),
            "campaign": texts["campaign"],
            "message_id": texts["message_id"],
            "machine_open": machine,
            "bot": None,
            "user_agent": texts["user_agent"],
            "url": texts["url"],
            "body": texts["body"],
            "discount_code": texts["discount_code"] if kind == EventType.PURCHASE else None,
            "outbox_id": None,
            "source": self.source,
        }
        row["dedup_key"] = event_key(
            contact_id,
            row["type"],
            row["channel"],
            occurred_at,
            amount,
            row["campaign"],
            row["message_id"],
        )
        return row

    def clean_block(self, block: Block) -> tuple[CleanBlock, Sequence[int]]:
        """The rows of ``block`` the column-wise checks vouch for, cleaned, and the
        positions of the others (left to :meth:`clean`)."""
        assert block.batch is not None
        batch = block.batch
        fields = self.columns.fields
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
                contact_ids = self.by_email.lookup(keys)
            else:
                no_email = ~col.mask(pc.is_valid(emails))
        if (phones := column("phone")) is not None and col.is_text(phones):
            text, _ = col.trimmed(phones)
            by_phone = self.by_phone.lookup(text)
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
            micros, late = col.utc_micros(times, str(self.tz), self.now + v.CLOCK_SKEW)
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
            currencies = pc.utf8_slice_codeunits(pc.ascii_upper(currencies), 0, _CURRENCY_LENGTH)
        texts = {}
        for field, limit in _TEXT_LIMITS.items():
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
        amount_values = amounts.filter(keep).to_pylist()
        campaigns = texts["campaign"].filter(keep)
        message_ids = texts["message_id"].filter(keep)
        bodies = texts["body"].filter(keep).to_pylist()
        purchase = pa.array(kinds[fast] == _KIND_CODES[EventType.PURCHASE])
        codes = pc.if_else(purchase, texts["discount_code"].filter(keep), None).to_pylist()
        ids = contact_ids[fast]
        digests = _digests(
            ids,
            kind_words,
            channel_words,
            micros[fast],
            stored_at,
            amount_values,
            campaigns,
            message_ids,
        )
        given_columns: dict[str, Callable[[], Any]] = {
            "contact_id": lambda: ids.tolist(),
            "type": lambda: kind_words.tolist(),
            "channel": lambda: channel_words.tolist(),
            "occurred_at": lambda: stored_at.to_pylist(),
            "amount": lambda: amount_values,
            "currency": lambda: currencies.filter(keep).to_pylist(),
            "campaign": lambda: _repeated(campaigns),
            "message_id": lambda: message_ids.to_pylist(),
            "machine_open": lambda: machine.filter(keep).to_pylist(),
            "user_agent": lambda: texts["user_agent"].filter(keep).to_pylist(),
            "url": lambda: texts["url"].filter(keep).to_pylist(),
            "body": lambda: bodies,
            "discount_code": lambda: codes,
            "source": lambda: [self.source] * len(ids),
            "dedup_key": lambda: digests,
        }
        columns = [given_columns[name]() for name in self.fields]
        lines = block.lines[fast]
        refused = np.flatnonzero(_REFUSAL_KINDS[kinds[fast]] & _SENDING_CHANNELS[channels[fast]])
        refusals = [
            (
                int(lines[at]),
                {
                    "contact_id": int(ids[at]),
                    "type": kind_words[at],
                    "channel": channel_words[at],
                    "occurred_at": moments[int(at)].as_py(),
                    "body": bodies[at],
                },
            )
            for at in refused
        ]
        used = [(code, from_db(moments[at].as_py())) for at, code in enumerate(codes) if code]
        cleaned = CleanBlock(list(zip(*columns, strict=True)), lines, refusals, used)
        return cleaned, np.flatnonzero(slow).tolist()

    def contact(self, email: Any, phone: Any, warnings: list[v.FieldWarning] | None = None) -> int:
        """The id of the known contact with this email (else phone); ``ValueError``. An
        invalid email beside a phone is a warning (into ``warnings``), not a rejection."""
        warnings = [] if warnings is None else warnings
        if email is not None:
            key = str(email).strip().lower()
            contact_id = self.by_email.get(key)
            if contact_id is None:
                if phone is None:
                    contact_id = self.by_email.get(normalise_email(key))
                elif (
                    normalised := v.optional("email", normalise_email, key, warnings)
                ) is not None:
                    contact_id = self.by_email.get(normalised)
            if contact_id is not None:
                return contact_id
        if phone is not None:
            contact_id = self.by_phone.get(normalise_phone(str(phone), self.region))
            if contact_id is not None:
                return contact_id
        if email is None and phone is None:
            raise ValueError("no email and no phone: the event names no contact")
        raise ValueError(f"unknown contact {email or phone!r}: import the contact first")

    def _stray_refusal(self, cell: Mapping[str, Any]) -> bool:
        """Keep the refusal of a row that names no contact of the base (an unsubscribe or
        a bounce of an address never imported) for the next write, which suppresses its
        address: a refusal is never lost. True when there is one."""
        try:
            kind = v.parse_event_type(str(cell["type"]))
            channel = v.DEFAULT_CHANNEL[kind]
            if cell["channel"] is not None:
                channel = v.parse_channel(str(cell["channel"]))
            occurred_at = v.parse_datetime(cell["occurred_at"], self.tz)
            if channel == Channel.EMAIL and cell["email"] is not None:
                address = normalise_email(str(cell["email"]))
            elif channel == Channel.SMS and cell["phone"] is not None:
                address = normalise_phone(str(cell["phone"]), self.region)
            else:
                return False
        except (ValueError, TypeError):
            return False
        if kind not in CONSIDERED or channel not in SENDING_CHANNELS:
            return False
        stray = {"type": kind.value, "channel": str(channel), "occurred_at": occurred_at}
        self.strays.append(stray | {"address": address, "body": _text(cell["body"], 4000)})
        return True

    def _refuse_strays(self) -> None:
        """Suppress the addresses of the refusals kept since the last write (rows that
        name no contact), in the write's transaction."""
        apply_refusals(
            self.connection,
            self.workspace,
            self.strays,
            now=self.now_aware,
            actor="import",
            details={"file": self.source},
        )
        self.strays.clear()

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        events = [row.record for row in rows]
        with self.connection.begin():
            inserted = record_events(
                self.connection,
                self.workspace,
                events,
                now=self.now_aware,
                actor="import",
                details={"file": self.source},
            )
            redeem_codes(self.connection, _codes(events), actor="import")
            self._refuse_strays()
        return inserted, len(events) - inserted, []

    def write_block(self, cleaned: CleanBlock, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Write a block's rows in file order (the first of two rows with one digest is
        the one kept, as on the row path), then apply the refusals among them."""
        records = cleaned.rows + [store.event_row(row.record, self.fields) for row in rows]
        lines = np.concatenate([cleaned.lines, np.array([row.line for row in rows], np.int64)])
        # In digest order, which keeps the unique index's inserts close together; among
        # rows with one digest, in file order, so the first one is the one kept.
        digests = np.array([record[-1] for record in records], "S16")
        order = np.lexsort((lines, digests))
        records = [records[at] for at in order]
        refusals = cleaned.refusals + [
            (row.line, row.record) for row in rows if row.record["type"] in _REFUSAL_NAMES
        ]
        refusals.sort(key=lambda pair: pair[0])
        with self.connection.begin():
            inserted = record_event_rows(
                self.connection,
                self.workspace,
                self.fields,
                records,
                [event for _, event in refusals],
                now=self.now_aware,
                actor="import",
                details={"file": self.source},
            )
            used = cleaned.codes + _codes([row.record for row in rows])
            redeem_codes(self.connection, used, actor="import")
            self._refuse_strays()
        return inserted, len(records) - inserted, []


_REFUSAL_NAMES = {kind.value for kind in CONSIDERED}


def _codes(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, datetime]]:
    """(code, when) of the row-path purchases that carry a discount code."""
    return [
        (event["discount_code"], from_db(event["occurred_at"]))
        for event in events
        if event.get("discount_code")
    ]


def _digests(
    ids: np.ndarray,
    kinds: np.ndarray,
    channels: np.ndarray,
    micros: np.ndarray,
    stored_at: pa.Array,
    amounts: list[float | None],
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


def _amount_texts(amounts: list[float | None]) -> pa.Array:
    """``str(amount)`` of each amount (Python's float repr, "None" when absent)."""
    given = pa.array(amounts, pa.float64())
    if given.null_count == len(given):
        return pa.array(np.full(len(given), "None", object), pa.string())
    texts = pa.array([str(amount) for amount in given.drop_null().to_pylist()], pa.string())
    present = pc.is_valid(given)
    spread = pc.replace_with_mask(pa.nulls(len(given), pa.string()), present, texts)
    return pc.fill_null(spread, "None")


def _repeated(values: pa.Array) -> list[Any]:
    """A column of few distinct values as a list that shares one object per value."""
    encoded = pc.dictionary_encode(values)
    words = np.array([*encoded.dictionary.to_pylist(), None], object)
    indices = pc.fill_null(encoded.indices, len(words) - 1).to_numpy(zero_copy_only=False)
    return list(words[indices])


def _text(value: Any, limit: int, *, upper: bool = False) -> str | None:
    """A cell as trimmed text of at most ``limit`` characters (upper-cased if ``upper``),
    None when absent: what the block path does with Arrow for the plain cells."""
    if value is None:
        return None
    text = str(value).strip()
    return (text.upper() if upper else text)[:limit]


def check_parquet_types(source: Source, columns: ColumnMap) -> None:
    """Refuse a Parquet file whose columns have types no cleaning can fix (a date column
    of booleans, an email column of numbers), naming the column and its type."""
    if source.types is None:
        return
    for field, accepted in _PARQUET_TYPES.items():
        position = columns.fields.get(field)
        if position is None:
            continue
        name = source.header[position]
        kind = source.types[name]
        if not kind.startswith(accepted):
            raise InputFileError(
                f"{source.path}: column {name!r} ({field}) has Parquet type {kind}, "
                f"expected one of: {', '.join(accepted)}"
            )


def import_events(
    workspace: Workspace,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import an events file (CSV, JSON Lines or Parquet) into the workspace. Rows whose
    contact is unknown are quarantined. Already stored events count as merged. A shop's
    order export is recognised and imported as purchases (:mod:`winback.ingest.orders`)."""
    from winback.ingest.orders import import_orders, is_order_export  # builds on this module

    if is_order_export(path):
        return import_orders(workspace, path, now=now, mapping=mapping, progress=progress)
    required = [("email", "phone"), ("type",), ("occurred_at",)]
    with mapped_source(path, EVENT_ALIASES, mapping, required) as (source, columns):
        check_parquet_types(source, columns)
        with store.bulk_events(workspace.engine, source.estimated_rows) as connection:
            batch = EventBatch(workspace, columns, now, path.name, connection)
            return run(source, batch, "events", workspace.quarantine_dir, progress)
