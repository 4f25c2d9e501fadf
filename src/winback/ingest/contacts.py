"""Importing contacts: clean each row, de-duplicate on the normalised email (or the
phone when there is no email), merge into what the store already holds, and never turn
a refusal (unsubscribed, bounced, complained) back into a subscription."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from winback.clock import to_db
from winback.compliance import audit
from winback.compliance.suppression import suppression_reasons
from winback.domain import REFUSALS, ChannelStatus, merge_status
from winback.ingest import values as v
from winback.ingest.columns import CONTACT_ALIASES, ColumnMap
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Refusals,
    mapped_source,
    run,
)
from winback.store import contacts as store
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

# Plain text attributes copied as they are (trimmed); the others have their own parser.
_TEXT_FIELDS = ("first_name", "last_name", "city", "gender", "source")
_LIST_FIELDS = ("interests", "tags")
# A suppression kept after erasure or an earlier refusal: the status it forces on import.
_SUPPRESSION_STATUS = {
    "unsubscribe": ChannelStatus.UNSUBSCRIBED,
    "bounce_hard": ChannelStatus.BOUNCED,
    "complaint": ChannelStatus.COMPLAINED,
}


class ContactBatch:
    def __init__(
        self,
        workspace: Workspace,
        columns: ColumnMap,
        now: datetime,
        status: ChannelStatus | None,
        source_name: str,
    ) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self.columns = columns
        self.now_aware = now
        self.now = to_db(now)
        self.today = now.date()
        self.status = status
        self.source_name = source_name
        config = workspace.config
        self.tz = ZoneInfo(config.workspace.timezone)
        self.region = config.workspace.default_region
        self.default_consent = config.default_consent
        with self.engine.connect() as connection:
            found = connection.execute(select(suppressions.c.id).limit(1)).first()
        self.check_suppressions = found is not None

    def clean(self, values: list[Any]) -> dict[str, Any]:
        """One row as contact columns; raises ``ValueError`` with the reason to reject it."""
        get = self.columns.cells(values).get
        raw_email, raw_phone = get("email"), get("phone")
        email = v.normalise_email(str(raw_email)) if raw_email is not None else None
        phone = v.normalise_phone(str(raw_phone), self.region) if raw_phone is not None else None
        if email is None and phone is None:
            raise ValueError("no email and no phone: a contact needs an address")
        row: dict[str, Any] = {"email": email, "phone": phone}
        for field in _TEXT_FIELDS:
            value = get(field)
            if value is not None:
                row[field] = str(value).strip()[:200]
        for field in _LIST_FIELDS:
            value = get(field)
            if value is not None:
                row[field] = v.parse_list(value)
        if (country := get("country")) is not None:
            row["country"] = _country(str(country))
        if (language := get("language")) is not None:
            row["language"] = str(language).strip().lower().replace("_", "-")[:8]
        if (timezone := get("timezone")) is not None:
            row["timezone"] = _zone(str(timezone))
        if (birth := get("birth_year")) is not None:
            row["birth_year"] = v.parse_birth_year(birth, self.today)
        if (created := get("created_at")) is not None:
            created_at = v.parse_datetime(created, self.tz)
            v.check_not_future(created_at, self.now)
            row["created_at"] = created_at
        if (subscriber := get("subscription_active")) is not None:
            row["subscription_active"] = v.parse_bool(subscriber)
        row["email_status"] = self._status(get, "email", email)
        row["sms_status"] = self._status(get, "sms", phone)
        extras = {
            name: value
            for name, position in self.columns.extras.items()
            if (value := values[position]) is not None and str(value).strip() != ""
        }
        if extras:
            row["attributes"] = {name: _plain(value) for name, value in extras.items()}
        return row

    def _status(
        self, get: Callable[[str], Any], channel: str, address: str | None
    ) -> ChannelStatus:
        """The channel's status from this row: ``--status`` for the whole file, else the
        explicit columns (a refusal among them wins), else the workspace default."""
        if address is None:
            return ChannelStatus.NONE
        if self.status is not None:
            return self.status
        found: list[ChannelStatus] = []
        if (status := get(f"{channel}_status")) is not None:
            found.append(v.parse_status(str(status)))
        if (blacklisted := get(f"{channel}_blacklisted")) is not None and v.parse_bool(blacklisted):
            found.append(ChannelStatus.UNSUBSCRIBED)
        if (optin := get(f"{channel}_optin")) is not None:
            found.append(ChannelStatus.SUBSCRIBED if v.parse_bool(optin) else ChannelStatus.NONE)
        refusals = [status for status in found if status in REFUSALS]
        if refusals:
            return refusals[0]
        if found:
            return found[0]
        return self.default_consent

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Merge the batch into the store, in one transaction: rows with the same key
        merge together and into the stored contact with that key."""
        with self.engine.begin() as connection:
            return self._write(connection, rows)

    def _write(self, connection: Connection, rows: list[Pending]) -> tuple[int, int, Refusals]:
        existing = store.contacts_by_address(
            connection,
            (row.record["email"] for row in rows if row.record["email"]),
            (row.record["phone"] for row in rows if row.record["phone"]),
        )
        # Slots: ("db", id) for a stored contact, ("new", n) for one this batch creates.
        slots: dict[tuple[str, int], dict[str, Any]] = {("db", c["id"]): c for c in existing}
        by_email = {c["email"]: ("db", c["id"]) for c in existing if c["email"]}
        by_phone = {c["phone"]: ("db", c["id"]) for c in existing if c["phone"]}
        touched: set[tuple[str, int]] = set()
        refusals: Refusals = []
        imported = merged = 0
        for row in rows:
            record = row.record
            email_slot = by_email.get(record["email"]) if record["email"] else None
            phone_slot = by_phone.get(record["phone"]) if record["phone"] else None
            if (
                phone_slot is not None
                and email_slot != phone_slot
                and (email_slot is not None or (record["email"] and slots[phone_slot]["email"]))
            ):
                refusals.append((row, "phone already belongs to another contact"))
                continue
            slot = email_slot or phone_slot
            if slot is None:
                imported += 1
                slot = ("new", len(slots))
                slots[slot] = _fresh(record, self.now, self.source_name)
            else:
                merged += 1
                slots[slot] = merge(slots[slot], record, self.now)
            touched.add(slot)
            if record["email"]:
                by_email[record["email"]] = slot
            if record["phone"]:
                by_phone[record["phone"]] = slot
        inserts = [slots[slot] for slot in touched if slot[0] == "new"]
        if self.check_suppressions:
            self._apply_suppressions(connection, inserts)
        store.insert_contacts(connection, inserts)
        stored = {c["id"]: c for c in existing}
        updates = [_changes(stored[slot[1]], slots[slot]) for slot in touched if slot[0] == "db"]
        updates = [update for update in updates if len(update) > 1]
        for group in _group_by_columns(updates):
            store.update_contacts(connection, group)
        audit.record(
            connection,
            (
                audit.status_change(
                    at=self.now_aware,
                    actor="import",
                    contact_id=update["id"],
                    channel=channel,
                    status=update[f"{channel}_status"],
                    details={"file": self.source_name},
                )
                for update in updates
                for channel in ("email", "sms")
                if f"{channel}_status" in update
            ),
        )
        return imported, merged, refusals

    def _apply_suppressions(self, connection: Connection, inserts: list[dict[str, Any]]) -> None:
        """A new contact whose address was suppressed before (unsubscribed, then erased)
        comes back suppressed: the suppression outlives the person's data."""
        owners = {
            (channel, row[column]): row
            for row in inserts
            for channel, column in (("email", "email"), ("sms", "phone"))
            if row[column]
        }
        reasons = suppression_reasons(connection, self.workspace, owners)
        for (channel, address), reason in reasons.items():
            status = _SUPPRESSION_STATUS.get(reason, ChannelStatus.UNSUBSCRIBED)
            owners[(channel, address)][f"{channel}_status"] = status


def merge(current: Mapping[str, Any], incoming: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A contact merged with a newer row for the same person: a value in the row
    replaces the stored one, an empty cell never erases it, tags and interests are
    united, the earliest creation date is kept, and statuses follow :func:`merge_status`.
    """
    result = dict(current)
    for name, value in incoming.items():
        if value is None or name in ("email_status", "sms_status"):
            continue
        if name in _LIST_FIELDS:
            result[name] = sorted(set(current.get(name) or []) | set(value))
        elif name == "attributes":
            result[name] = {**(current.get(name) or {}), **value}
        elif name == "created_at":
            result[name] = min(current.get(name) or value, value)
        else:
            result[name] = value
    for channel in ("email", "sms"):
        key = f"{channel}_status"
        before = ChannelStatus(current.get(key) or ChannelStatus.NONE)
        after = merge_status(before, ChannelStatus(incoming.get(key) or ChannelStatus.NONE))
        if after != before:
            result[key] = after.value
            result[f"{key}_at"] = now
    result["updated_at"] = now
    return result


# Every inserted row names every column, so a batch is one executemany.
_BLANK = {column.name: None for column in contacts.columns if column.name != "id"} | {
    "subscription_active": False,
    "frequency": "normal",
}


def _fresh(record: dict[str, Any], now: datetime, source: str) -> dict[str, Any]:
    row = {**_BLANK, **record}
    row["created_at"] = row["created_at"] or now
    row["source"] = row["source"] or source
    row["updated_at"] = now
    for channel in ("email", "sms"):
        row[f"{channel}_status"] = ChannelStatus(row[f"{channel}_status"]).value
        row[f"{channel}_status_at"] = now
    return row


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a merge changed, with the id (``updated_at`` alone is no change)."""
    diff = {
        name: value
        for name, value in after.items()
        if name != "updated_at" and before.get(name) != value
    }
    if diff:
        diff["updated_at"] = after["updated_at"]
    return {"id": before["id"], **diff}


def _group_by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def _country(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ValueError(f"invalid country {text!r}: use a two-letter code such as FR")
    return code


def _zone(text: str) -> str:
    try:
        ZoneInfo(text.strip())
    except Exception:
        raise ValueError(f"unknown time zone {text!r}") from None
    return text.strip()


def _plain(value: Any) -> Any:
    """A value JSON can hold (Parquet gives dates and decimals)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def import_contacts(
    workspace: Workspace,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    status: ChannelStatus | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import a contacts file (CSV, JSON Lines or Parquet) into the workspace.

    ``mapping`` maps source columns to fields; ``status`` marks every address of the
    file (an ESP's unsubscribed or cleaned export). Each batch is one transaction, and
    a re-run of the same file changes nothing, so an interrupted import is simply run
    again."""
    with mapped_source(path, CONTACT_ALIASES, mapping, [("email", "phone")]) as (source, columns):
        batch = ContactBatch(workspace, columns, now, status, path.name)
        return run(source, batch, "contacts", workspace.quarantine_dir, progress)
