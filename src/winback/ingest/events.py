"""Importing events: resolve each row to a known contact by email or phone, clean its
type, time, channel and amount, and store it once. Importing the same file twice adds
nothing: each event has a digest of what makes it the same event (contact, type,
channel, time, amount, campaign, message) and the store ignores a digest it holds.

Refusals among the events (unsubscribe, hard bounce, complaint on email or SMS) change
the contact's channel status at once: nobody is written to after saying no.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from winback.clock import to_db
from winback.compliance.refusals import apply_refusals
from winback.errors import InputFileError
from winback.ingest import values as v
from winback.ingest.columns import EVENT_ALIASES, ColumnMap, map_columns, require
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Quarantine,
    Refusals,
    run,
)
from winback.ingest.reader import Source, open_source
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


def event_key(
    contact_id: int,
    kind: str,
    channel: str,
    occurred_at: datetime,
    amount: float | None,
    campaign: str | None,
    message_id: str | None,
) -> bytes:
    """The 16-byte digest that makes an event the same event twice."""
    text = (
        f"{contact_id}|{kind}|{channel}|{occurred_at.isoformat()}|{amount}|{campaign}|{message_id}"
    )
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


class EventBatch:
    def __init__(
        self, workspace: Workspace, columns: ColumnMap, now: datetime, source: str
    ) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self.columns = columns
        self.now_aware = now
        self.now = to_db(now)
        self.source = source
        self.tz = ZoneInfo(workspace.config.workspace.timezone)
        self.region = workspace.config.workspace.default_region
        with self.engine.connect() as connection:
            self.by_email, self.by_phone = store.contact_keys(connection)

    def clean(self, values: list[Any]) -> dict[str, Any]:
        """One row as an event; raises ``ValueError`` with the reason to reject it."""
        cell = dict.fromkeys(EVENT_ALIASES) | self.columns.cells(values)
        contact_id = self._contact(cell["email"], cell["phone"])
        if cell["type"] is None:
            raise ValueError("no event type")
        kind = v.parse_event_type(str(cell["type"]))
        if cell["occurred_at"] is None:
            raise ValueError("no date")
        occurred_at = v.parse_datetime(cell["occurred_at"], self.tz)
        v.check_not_future(occurred_at, self.now)
        channel = (
            v.parse_channel(str(cell["channel"]))
            if cell["channel"] is not None
            else v.DEFAULT_CHANNEL.get(kind, "email")
        )
        amount = v.parse_amount(cell["amount"]) if cell["amount"] is not None else None
        currency, campaign, message_id = cell["currency"], cell["campaign"], cell["message_id"]
        machine = cell["machine_open"]
        row: dict[str, Any] = {
            "contact_id": contact_id,
            "type": kind.value,
            "channel": str(channel),
            "occurred_at": occurred_at,
            "amount": amount,
            "currency": str(currency).strip().upper()[:3] if currency is not None else None,
            "campaign": str(campaign).strip()[:200] if campaign is not None else None,
            "message_id": str(message_id).strip()[:200] if message_id is not None else None,
            "machine_open": v.parse_bool(machine) if machine is not None else None,
            "bot": None,
            "user_agent": _text(cell["user_agent"], 500),
            "url": _text(cell["url"], 4000),
            "body": _text(cell["body"], 4000),
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

    def _contact(self, email: Any, phone: Any) -> int:
        if email is not None:
            key = str(email).strip().lower()
            contact_id = self.by_email.get(key)
            if contact_id is None:
                contact_id = self.by_email.get(v.normalise_email(key))
            if contact_id is not None:
                return contact_id
        if phone is not None:
            contact_id = self.by_phone.get(v.normalise_phone(str(phone), self.region))
            if contact_id is not None:
                return contact_id
        if email is None and phone is None:
            raise ValueError("no email and no phone: the event names no contact")
        raise ValueError(f"unknown contact {email or phone!r}: import the contact first")

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        events = [row.record for row in rows]
        with self.engine.begin() as connection:
            inserted = store.insert_events(connection, events)
            apply_refusals(
                connection,
                self.workspace,
                events,
                now=self.now_aware,
                actor="import",
                details={"file": self.source},
            )
        return inserted, len(events) - inserted, []


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value).strip()[:limit]


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
    contact is unknown are quarantined. Already stored events count as merged."""
    source = open_source(path)
    try:
        columns = map_columns(source.header, EVENT_ALIASES, mapping or {}, source=str(path))
        require(columns, [("email", "phone"), ("type",), ("occurred_at",)], source=str(path))
        check_parquet_types(source, columns)
        report = ImportReport(file=str(path), kind="events")
        quarantine = Quarantine(workspace.quarantine_dir, source)
        batch = EventBatch(workspace, columns, now, path.name)
        return run(source, batch, report, quarantine, progress)
    finally:
        source.close()
