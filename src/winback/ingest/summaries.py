"""The purchase summary of a contact export: Brevo's ``DERNIER_ACHAT`` / ``MONTANT_TOTAL``,
a shop's "last order date" / "total spent".

Scoring and the retention purge read purchases from events only, so a summary becomes one
``purchase`` event dated at the last order, whose amount is the total spent: the contact
is then a customer for ``winback score``, and their last purchase restarts the retention
clock of ``winback purge``, as a real order would.

- A summary needs its date: without a last order date (Shopify's customers export has
  none) the totals stay free attributes of the contact, since dating them at the import
  would keep a long-gone buyer from the purge. Shopify's orders export gives the dates.
- Re-importing the same export adds nothing (the event's key is the contact and the
  date). A later export whose last order is newer adds one more summary event, whose
  amount is what the total grew by since the summaries already stored, so the spend adds
  up to the latest total; one with an older or equal date adds nothing.
- A summary counts as one purchase. A "total orders" column stays a free attribute of
  the contact: as that many events, all on one day, it would read as repeat purchases to
  the models.
- Events are written with the channel ``web`` (the exports come from online shops and
  their ESPs) and the source ``summary:<file>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from winback.domain import Channel, EventType
from winback.events import record_events
from winback.ingest.columns import ColumnMap
from winback.store import contacts as store
from winback.workspace import Workspace

# The fields of a summary, taken out of the contact's record before it is stored.
FIELDS = ("last_order_at", "total_spent")
SOURCE_PREFIX = "summary:"


@dataclass(frozen=True)
class Summary:
    """One row's purchase summary, with the addresses that find its contact."""

    email: str | None
    phone: str | None
    last_order_at: datetime
    total_spent: float | None


def dated_only(columns: ColumnMap) -> ColumnMap:
    """``columns`` with the totals given back to the free attributes when the file has no
    last order date (see the module's docstring)."""
    if columns.has("last_order_at"):
        return columns
    moved = {
        columns.header[position].strip(): position
        for name, position in columns.fields.items()
        if name in FIELDS
    }
    if not moved:
        return columns
    fields = {name: position for name, position in columns.fields.items() if name not in FIELDS}
    extras = dict(sorted({**columns.extras, **moved}.items(), key=lambda item: item[1]))
    return replace(columns, fields=fields, extras=extras)


def take(
    columns: dict[str, list[Any]], emails: Sequence[str | None], phones: Sequence[str | None]
) -> list[Summary]:
    """Remove the summary fields from rows given a column at a time, and return the
    summaries of the rows that have a last order date."""
    found = {name: columns.pop(name, None) for name in FIELDS}
    dates, totals = found["last_order_at"], found["total_spent"]
    if dates is None:
        return []
    return [
        Summary(email, phone, moment, None if totals is None else totals[at])
        for at, (email, phone, moment) in enumerate(zip(emails, phones, dates, strict=True))
        if moment is not None
    ]


def take_from_record(record: dict[str, Any]) -> Summary | None:
    """:func:`take` of one row's record."""
    found = {name: record.pop(name, None) for name in FIELDS}
    if found["last_order_at"] is None:
        return None
    return Summary(record["email"], record["phone"], found["last_order_at"], found["total_spent"])


def write(
    connection: Connection,
    workspace: Workspace,
    summaries: list[Summary],
    source: str,
    *,
    now: datetime,
) -> int:
    """Store the summaries of contacts already written, as purchase events; return how
    many events were new."""
    if not summaries:
        return 0
    stored = store.contacts_by_address(
        connection,
        (s.email for s in summaries if s.email),
        (s.phone for s in summaries if s.phone),
    )
    by_email = {c["email"]: c["id"] for c in stored if c["email"]}
    by_phone = {c["phone"]: c["id"] for c in stored if c["phone"]}
    # The newest summary of each contact (a file may hold one person twice).
    newest: dict[int, Summary] = {}
    for summary in summaries:
        contact = by_email.get(summary.email or "") or by_phone.get(summary.phone or "")
        if contact is None:
            continue  # the row was refused (a phone that belongs to another contact)
        known = newest.get(contact)
        if known is None or summary.last_order_at > known.last_order_at:
            newest[contact] = summary
    before = store.summary_totals(connection, list(newest), SOURCE_PREFIX)
    events = []
    for contact, summary in newest.items():
        spent, latest = before.get(contact, (0.0, None))
        if latest is not None and summary.last_order_at <= latest:
            continue
        amount = None if summary.total_spent is None else max(summary.total_spent - spent, 0.0)
        events.append(
            {
                "contact_id": contact,
                "type": EventType.PURCHASE.value,
                "channel": Channel.WEB.value,
                "occurred_at": summary.last_order_at,
                "amount": amount,
                "source": f"{SOURCE_PREFIX}{source}"[:200],
                "dedup_key": store.dedup_key("purchase summary", contact, summary.last_order_at),
            }
        )
    return record_events(connection, workspace, events, now=now, actor="import")
