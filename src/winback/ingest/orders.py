"""A shop's order export as purchases: Shopify's "Export orders" file, recognised by its
columns, imports through ``winback import events FILE`` as one purchase per order.

The file has one row per line item; only the first row of an order carries its money,
status and dates, the others repeat its name (``#1001``) and email. Each order becomes a
``purchase`` event (channel ``web``) of the contact with that email (or phone):

- its time is ``Paid at``, or ``Created at`` for an order not paid yet;
- its amount is ``Total`` less ``Refunded Amount``, in the order's ``Currency``;
- its ``Discount Code`` is kept in ``events.discount_code``, what a coupon's redemption
  is matched on (``offers.code``);
- a cancelled (``Cancelled at``), voided or wholly refunded order is no purchase: its
  rows go to the quarantine with that reason, so the counts still add up.

Every row is counted: the rows of an order share its fate (imported, already stored,
or rejected with the order's reason). An order is the same order on every import (its
digest is the contact, the order's name and its creation time), so importing a newer
export again adds only the new orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from winback.clock import from_db
from winback.domain import EventType
from winback.errors import InputFileError
from winback.events import record_events
from winback.ingest import values as v
from winback.ingest.columns import ColumnMap, map_columns
from winback.ingest.event_blocks import event_key
from winback.ingest.events import EventBatch
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Refusals,
    run,
    source_name,
)
from winback.ingest.reader import open_source
from winback.journeys.offers import redeem_codes
from winback.store import contacts as store
from winback.store.history import stored_keys
from winback.words import fold
from winback.workspace import Workspace

# The columns of Shopify's order export that make a purchase, by the export's own names.
ORDER_COLUMNS: dict[str, tuple[str, ...]] = {
    "order": ("Name",),
    "email": ("Email",),
    "phone": ("Phone",),
    "financial_status": ("Financial Status",),
    "paid_at": ("Paid at",),
    "created_at": ("Created at",),
    "cancelled_at": ("Cancelled at",),
    "currency": ("Currency",),
    "total": ("Total",),
    "refunded": ("Refunded Amount",),
    "discount_code": ("Discount Code",),
}
# The columns that tell an order export from any other file.
_SIGNATURE = {fold(name) for name in ("Name", "Financial Status", "Lineitem name", "Total")}
_DISCOUNT_CODE_LENGTH = 200


def is_order_export(path: Path) -> bool:
    """Whether ``path`` is a shop's order export (by its header)."""
    source = open_source(path)
    try:
        return _SIGNATURE.issubset(fold(name) for name in source.header)
    finally:
        source.close()


@dataclass
class OrderRow:
    """A cleaned row: the order it belongs to and, on the order's first row, its
    purchase event."""

    order: str
    event: dict[str, Any] | None = None


class OrderBatch:
    """The pipeline's side of an order export (:class:`winback.ingest.pipeline.Batch`)."""

    def __init__(self, events_batch: EventBatch, columns: ColumnMap) -> None:
        self.events = events_batch
        self.columns = columns
        self.tz = ZoneInfo(events_batch.workspace.config.workspace.timezone)
        # Per order read so far: None once its first row is clean, else why it is refused.
        self.refused: dict[str, str | None] = {}
        # Per order written so far: whether it was stored by this import (else before).
        self.new: dict[str, bool] = {}

    def clean(self, values: list[Any], warnings: list[v.FieldWarning], line: int) -> OrderRow:
        cell = self.columns.cells(values)
        order = str(cell.get("order", "")).strip()
        if not order:
            raise ValueError("no order name (column Name)")
        if "total" not in cell and "financial_status" not in cell:
            return self._line_item(order)
        if order in self.refused:
            raise ValueError(f"repeated order: {order} already has its order row above")
        try:
            event = self._purchase(order, cell)
        except ValueError as exc:
            self.refused[order] = str(exc)
            raise
        self.refused[order] = None
        return OrderRow(order, event)

    def _line_item(self, order: str) -> OrderRow:
        if order not in self.refused:
            raise ValueError(
                f"line item without its order: the first row of {order} (with its total) "
                "is not above it in the file"
            )
        reason = self.refused[order]
        if reason is not None:
            raise ValueError(f"{reason.partition(':')[0]}: line item of {order}")
        return OrderRow(order)

    def _purchase(self, order: str, cell: Mapping[str, Any]) -> dict[str, Any]:
        """The purchase event of an order's first row; ``ValueError`` when it is none."""
        status = fold(str(cell.get("financial_status", "")))
        if "cancelled_at" in cell:
            raise ValueError(f"cancelled order: {order} was cancelled at {cell['cancelled_at']}")
        if status == "voided":
            raise ValueError(f"voided order: the payment of {order} was voided")
        if "created_at" not in cell:
            raise ValueError(f"no date: {order} has no Created at")
        created = v.parse_datetime(cell["created_at"], self.tz)
        occurred_at = v.parse_datetime(cell.get("paid_at", cell["created_at"]), self.tz)
        v.check_not_future(occurred_at, self.events.now)
        total = v.parse_amount(cell.get("total", 0))
        refunded = v.parse_amount(cell.get("refunded", 0))
        amount = round(total - refunded, 2)
        if refunded and amount <= 0:
            raise ValueError(f"refunded order: {order} was refunded in full")
        contact_id = self.events.contact(cell.get("email"), cell.get("phone"))
        kind, channel = EventType.PURCHASE, v.DEFAULT_CHANNEL[EventType.PURCHASE]
        code = cell.get("discount_code")
        return {
            "contact_id": contact_id,
            "type": kind.value,
            "channel": channel.value,
            "occurred_at": occurred_at,
            "amount": amount,
            "currency": str(cell.get("currency", "")).strip().upper()[:3] or None,
            "discount_code": None if code is None else str(code).strip()[:_DISCOUNT_CODE_LENGTH],
            "source": self.events.source,
            # The order, not its amount or payment time: a refund or a payment after
            # the first import leaves it the same order.
            "dedup_key": event_key(
                contact_id, kind.value, channel.value, created, None, None, f"order {order}"
            ),
        }

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Store the orders whose first row is in ``rows``; every row counts as imported
        or already stored with its order."""
        purchases = [row.record.event for row in rows if row.record.event is not None]
        connection = self.events.connection
        with connection.begin():
            stored = stored_keys(connection, [event["dedup_key"] for event in purchases])
            record_events(
                connection,
                self.events.workspace,
                purchases,
                now=self.events.now_aware,
                actor="import",
            )
            redeem_codes(
                connection,
                (
                    (event["discount_code"], from_db(event["occurred_at"]))
                    for event in purchases
                    if event.get("discount_code")
                ),
                actor="import",
            )
        imported = 0
        for row in rows:
            record: OrderRow = row.record
            if record.event is not None:
                self.new[record.order] = record.event["dedup_key"] not in stored
            imported += self.new[record.order]
        return imported, len(rows) - imported, []


def import_orders(
    workspace: Workspace,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import a shop's order export (:func:`is_order_export`) as purchases; the report's
    counts are rows (line items), its kind ``orders``."""
    if mapping:
        raise InputFileError(
            f"{path}: a shop's order export is read by its own column names; --map does "
            "not apply to it"
        )
    source = open_source(path)
    try:
        columns = map_columns(source.header, ORDER_COLUMNS, {}, source=str(path))
        with store.bulk_events(workspace.engine, source.estimated_rows) as connection:
            events_batch = EventBatch(workspace, columns, now, source_name(path), connection)
            batch = OrderBatch(events_batch, columns)
            return run(source, batch, "orders", workspace.quarantine_dir, progress)
    finally:
        source.close()


__all__ = ["ORDER_COLUMNS", "import_orders", "is_order_export"]
