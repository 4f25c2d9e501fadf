"""Importing events: resolve each row to a known contact by email or phone, clean its
type, time, channel and amount, and store it once. Importing the same file twice adds
nothing: each event has a digest of what makes it the same event (contact, type,
channel, time, amount, campaign, message) and the store ignores a digest it holds.

Refusals among the events (unsubscribe, hard bounce, complaint on email or SMS) change
the contact's channel status at once: nobody is written to after saying no.

CSV and Parquet files are cleaned a block at a time (:mod:`winback.ingest.event_blocks`):
whole columns through Arrow compute, contacts resolved against sorted key arrays, the
digests computed over Arrow-built strings. The rows those checks cannot vouch for take
the row path (:meth:`EventBatch.clean`), and both are written in file order.

A purchase that carries a discount code (a ``code`` / ``discount_code`` / ``Discount
Code`` column) keeps it in ``events.discount_code``; a code winback issued is redeemed in
the same transaction (:func:`winback.journeys.offers.redeem_codes`), as a shop's order
export does. Other rows' codes are not kept: only a purchase redeems a coupon.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
from sqlalchemy import Connection

from winback.addresses import normalise_email, normalise_phone
from winback.clock import from_db, to_db
from winback.compliance.refusals import CONSIDERED
from winback.domain import SENDING_CHANNELS, Channel, EventType
from winback.errors import InputFileError
from winback.events import record_event_table
from winback.ingest import values as v
from winback.ingest.columns import EVENT_ALIASES, ColumnMap
from winback.ingest.event_blocks import (
    CURRENCY_LENGTH,
    EVENT_TYPES,
    TEXT_LIMITS,
    CleanBlock,
    clean_block,
    event_key,
)
from winback.ingest.keys import contact_keys
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Refusals,
    mapped_source,
    run,
    source_name,
)
from winback.ingest.reader import Block, Source
from winback.journeys.offers import redeem_codes
from winback.store import contacts as store
from winback.store.contacts import event_table_scratch, release_event_table
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


class EventBatch:
    def __init__(
        self,
        workspace: Workspace,
        columns: ColumnMap,
        now: datetime,
        source: str,
        connection: Connection,
        scratch: Path | None = None,
    ) -> None:
        """``connection``: the import's (:func:`winback.store.contacts.bulk_events`),
        one transaction per batch written; ``scratch``: the folder of the blocks'
        scratch databases on SQLite (:func:`winback.store.contacts.event_table_scratch`),
        None on PostgreSQL."""
        self.workspace = workspace
        self.connection = connection
        self.columns = columns
        self.now_aware = now
        self.now = to_db(now)
        self.source = source
        self.scratch = scratch
        self.tz = ZoneInfo(workspace.config.workspace.timezone)
        self.region = workspace.config.workspace.default_region
        with connection.begin():
            self.by_email, self.by_phone = contact_keys(connection)
        # Refusals of rows that cannot be stored (:meth:`_keep_refusal`), by line.
        self.strays: list[tuple[int, dict[str, Any]]] = []
        # The columns this file can fill, the digest last; the others stay NULL.
        self.fields = [
            name
            for name in store.EVENT_FIELDS
            if name not in EVENT_ALIASES
            or name in ("type", "occurred_at", "channel")
            or columns.has(name)
        ]

    def clean(self, values: list[Any], warnings: list[v.FieldWarning], line: int) -> dict[str, Any]:
        """One row as an event; raises ``ValueError`` with the reason to reject it (no
        known contact, no usable type or time, a purchase without a usable amount), adds
        the fields it leaves empty to ``warnings``."""
        cell = dict.fromkeys(EVENT_ALIASES) | self.columns.cells(values)
        try:
            contact_id = self.contact(cell["email"], cell["phone"], warnings)
        except ValueError as exc:
            if self._keep_refusal(cell, None, line):
                raise ValueError(f"{exc}; its refusal is on the suppression list") from exc
            raise
        try:
            kind, channel, occurred_at = self._what(cell, warnings)
            v.check_not_future(occurred_at, self.now)
        except ValueError as exc:
            if self._keep_refusal(cell, contact_id, line):
                raise ValueError(f"{exc}; its refusal is applied, dated at the import") from exc
            raise
        amount = None
        if cell["amount"] is not None:
            if kind == EventType.PURCHASE:
                amount = v.parse_amount(cell["amount"])
            else:
                amount = v.optional("amount", v.parse_amount, cell["amount"], warnings)
        currency, machine = cell["currency"], cell["machine_open"]
        if machine is not None:
            machine = v.optional("machine_open", v.parse_bool, machine, warnings)
        texts = {field: _text(cell[field], limit) for field, limit in TEXT_LIMITS.items()}
        row: dict[str, Any] = {
            "contact_id": contact_id,
            "type": kind.value,
            "channel": str(channel),
            "occurred_at": occurred_at,
            "amount": amount,
            "currency": _text(currency, CURRENCY_LENGTH, upper=True),
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
        return clean_block(self, block)

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

    def _what(
        self, cell: Mapping[str, Any], warnings: list[v.FieldWarning]
    ) -> tuple[EventType, Channel, datetime]:
        """A row's type, channel and time; ``ValueError`` when the type or the time is
        missing or unreadable (an unreadable channel is the type's own, with a warning)."""
        if cell["type"] is None:
            raise ValueError("no event type")
        kind = v.parse_event_type(str(cell["type"]))
        if cell["occurred_at"] is None:
            raise ValueError("no date")
        occurred_at = v.parse_datetime(cell["occurred_at"], self.tz)
        channel = v.DEFAULT_CHANNEL[kind]
        if cell["channel"] is not None:
            channel = (
                v.optional("channel", v.parse_channel, str(cell["channel"]), warnings) or channel
            )
        return kind, Channel(channel), occurred_at

    def _keep_refusal(self, cell: Mapping[str, Any], contact_id: int | None, line: int) -> bool:
        """Keep for the next write the refusal of a row that cannot be stored: one that
        names no contact of the base (``contact_id`` None: an unsubscribe or a bounce of
        an address never imported, whose address is suppressed), or one whose date is
        missing, unreadable or in the future (dated at the import). A refusal is never
        lost. True when the row is one."""
        try:
            kind = v.parse_event_type(str(cell["type"]))
        except ValueError:
            return False
        channel = v.DEFAULT_CHANNEL[kind]
        if cell["channel"] is not None:
            channel = v.optional("channel", v.parse_channel, str(cell["channel"]), []) or channel
        if kind not in CONSIDERED or channel not in SENDING_CHANNELS:
            return False
        try:
            occurred_at = min(v.parse_datetime(cell["occurred_at"], self.tz), self.now)
        except (ValueError, TypeError):
            occurred_at = self.now
        refusal: dict[str, Any] = {
            "type": kind.value,
            "channel": str(channel),
            "occurred_at": occurred_at,
            "body": _text(cell["body"], TEXT_LIMITS["body"]),
        }
        if contact_id is not None:
            refusal["contact_id"] = contact_id
        else:
            try:
                if channel == Channel.EMAIL and cell["email"] is not None:
                    refusal["address"] = normalise_email(str(cell["email"]))
                elif channel == Channel.SMS and cell["phone"] is not None:
                    refusal["address"] = normalise_phone(str(cell["phone"]), self.region)
                else:
                    return False
            except ValueError:
                return False
        self.strays.append((line, refusal))
        return True

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        return self.write_block(CleanBlock(_row_table([], self.fields), [], []), rows)

    def write_block(self, cleaned: CleanBlock, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Write a block's rows (the first of two rows with one digest is the one kept,
        as on the row path), then apply the refusals among them and those of the rows
        that could not be stored since the last write, in the order of their lines."""
        table = pa.concat_tables([cleaned.table, _row_table(rows, self.fields)])
        refusals = [
            *cleaned.refusals,
            *((row.line, row.record) for row in rows if row.record["type"] in _REFUSAL_NAMES),
            *self.strays,
        ]
        refusals.sort(key=lambda pair: pair[0])
        with self.connection.begin():
            inserted = record_event_table(
                self.connection,
                self.workspace,
                table,
                [event for _, event in refusals],
                scratch=self.scratch,
                now=self.now_aware,
                actor="import",
                details={"file": self.source},
            )
            used = cleaned.codes + _codes([row.record for row in rows])
            redeem_codes(self.connection, used, actor="import")
        self.strays.clear()
        release_event_table(self.connection, self.scratch)
        return inserted, table.num_rows - inserted, []


def _row_table(rows: list[Pending], fields: Sequence[str]) -> pa.Table:
    """The rows of the row path as a block's table (:class:`CleanBlock`)."""
    return pa.table(
        [pa.array([row.record[name] for row in rows], EVENT_TYPES[name]) for name in fields]
        + [pa.array([row.line for row in rows], pa.int64())],
        names=[*fields, "line"],
    )


_REFUSAL_NAMES = {kind.value for kind in CONSIDERED}


def _codes(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, datetime]]:
    """(code, when) of the row-path purchases that carry a discount code."""
    return [
        (event["discount_code"], from_db(event["occurred_at"]))
        for event in events
        if event.get("discount_code")
    ]


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
        with (
            store.bulk_events(workspace.engine, source.estimated_rows) as connection,
            event_table_scratch(connection) as scratch,
        ):
            batch = EventBatch(workspace, columns, now, source_name(path), connection, scratch)
            return run(source, batch, "events", workspace.quarantine_dir, progress)
