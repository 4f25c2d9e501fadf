"""Importing contacts: clean each row, de-duplicate on the normalised email (or the
phone when there is no email), merge into what the store already holds, and never turn
a refusal (unsubscribed, bounced, complained) back into a subscription.

CSV and Parquet files are cleaned a block at a time (:meth:`ContactBatch.clean_block`):
addresses through :mod:`winback.ingest.addresses`, dates and names through Arrow
compute, the fields of few distinct values (countries, tags, statuses) by the row path's
own parsers called once per distinct value. The rows those checks cannot vouch for take
the row path (:meth:`ContactBatch.clean`). A contact whose email and phone appear once
in the block and nowhere in the store is inserted as it is, a column at a time; the
others (duplicates, contacts already stored) go through the row path's merge, in file
order, so both paths store the same contacts (a test holds them to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, select

from winback.clock import to_db
from winback.compliance import audit
from winback.compliance.suppression import suppression_reasons
from winback.domain import REFUSALS, ChannelStatus, merge_status
from winback.ingest import addresses
from winback.ingest import columnar as col
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
from winback.ingest.reader import Block
from winback.store import contacts as store
from winback.store.schema import contacts, suppressions
from winback.workspace import Workspace

# Plain text attributes copied as they are (trimmed, at most this long); the others
# have their own parser.
_TEXT_FIELDS = ("first_name", "last_name", "city", "gender", "source")
_TEXT_LIMIT = 200
_LIST_FIELDS = ("interests", "tags")
_CHANNELS = (("email", "email"), ("sms", "phone"))
# A status as a member and as the store keeps it, by member or text (the same key):
# calling the enum costs more than the rest of a merge.
_STATUS = {status.value: status for status in ChannelStatus}
_STATUS_TEXT = {status: status.value for status in ChannelStatus}
# A suppression kept after erasure or an earlier refusal: the status it forces on import.
_SUPPRESSION_STATUS = {
    "unsubscribe": ChannelStatus.UNSUBSCRIBED,
    "bounce_hard": ChannelStatus.BOUNCED,
    "complaint": ChannelStatus.COMPLAINED,
}


@dataclass
class ContactBlock:
    """The rows of a block that :meth:`ContactBatch.clean_block` vouched for: each row's
    line and position in the block, and a list per field of what :meth:`ContactBatch.
    clean` puts in its record (None where it leaves the field out)."""

    block: Block
    lines: np.ndarray
    positions: np.ndarray
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.lines)

    def records(self, rows: Iterable[int]) -> list[Pending]:
        """These rows as the row path's pending rows, without their original values
        (:meth:`originals` gives them to the few rows that need them)."""
        names = list(self.columns.items())
        pending = []
        for at in rows:
            record = {
                name: value
                for name, values in names
                if (value := values[at]) is not None or name in ("email", "phone")
            }
            pending.append(Pending(int(self.lines[at]), [], record))
        return pending

    def originals(self, rows: list[Pending]) -> None:
        """Give these rows of :meth:`records` their original values, for the quarantine."""
        if not rows:
            return
        at = np.searchsorted(self.lines, [row.line for row in rows])
        found = self.block.values(self.positions[at].tolist())
        for row, (_, values) in zip(rows, found, strict=True):
            row.values = values


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
        # The fields read by one parser of the cell, in the order the row path checks
        # them (the first that fails names the reason).
        self.parsers: dict[str, Callable[[Any], Any]] = {
            "interests": v.parse_list,
            "tags": v.parse_list,
            "country": _country,
            "language": _language,
            "timezone": _zone,
            "birth_year": partial(v.parse_birth_year, today=self.today),
            "created_at": self._created_at,
            "subscription_active": v.parse_bool,
        }

    def clean(self, values: list[Any], warnings: list[v.FieldWarning]) -> dict[str, Any]:
        """One row as contact columns; raises ``ValueError`` with the reason to reject it
        (no valid address), adds the fields it leaves empty to ``warnings``."""
        get = self.columns.cells(values).get
        email, phone = v.identity(get("email"), get("phone"), self.region, warnings)
        row: dict[str, Any] = {"email": email, "phone": phone}
        for field in _TEXT_FIELDS:
            value = get(field)
            if value is not None:
                row[field] = str(value).strip()[:_TEXT_LIMIT]
        birthday = None
        for field, parse in self.parsers.items():
            if (value := get(field)) is None:
                continue
            if field == "birth_year":  # or a birthday without a year (Mailchimp's MM/DD)
                parse = partial(v.parse_birthday, today=self.today)
            parsed = v.optional(field, parse, value, warnings)
            if field == "birth_year" and isinstance(parsed, str):
                birthday = parsed
            elif parsed is not None:
                row[field] = parsed
        for channel, address in (("email", email), ("sms", phone)):
            row[f"{channel}_status"] = (
                ChannelStatus.NONE
                if address is None
                else self.status or self._consent(*(get(name) for name in _consent_fields(channel)))
            )
        extras = self.columns.extras
        attributes = _attributes(extras, [values[position] for position in extras.values()])
        if birthday:  # a birthday without a year (Mailchimp's MM/DD): no birth year is made up
            attributes = {**(attributes or {}), "birthday": birthday}
        if attributes:
            row["attributes"] = attributes
        return row

    def _created_at(self, value: Any) -> datetime:
        created_at = v.parse_datetime(value, self.tz)
        v.check_not_future(created_at, self.now)
        return created_at

    def _consent(self, status: Any, blacklisted: Any, optin: Any) -> ChannelStatus:
        """A channel's status from a row's consent cells (None where absent): the explicit
        columns, a refusal among them winning, else the workspace default."""
        found: list[ChannelStatus] = []
        if status is not None:
            found.append(v.parse_status(str(status)))
        if blacklisted is not None and v.parse_bool(blacklisted):
            found.append(ChannelStatus.UNSUBSCRIBED)
        if optin is not None:
            found.append(ChannelStatus.SUBSCRIBED if v.parse_bool(optin) else ChannelStatus.NONE)
        refusals = [status for status in found if status in REFUSALS]
        if refusals:
            return refusals[0]
        if found:
            return found[0]
        return self.default_consent

    def clean_block(self, block: Block) -> tuple[ContactBlock, list[int]]:
        """The rows of ``block`` the column-wise checks vouch for, cleaned, and the
        positions of the others (left to :meth:`clean`)."""
        assert block.batch is not None
        batch = block.batch
        rows = batch.num_rows
        fields = self.columns.fields

        def column(field: str) -> pa.Array | None:
            return col.plain_array(batch.column(fields[field])) if field in fields else None

        slow = col.unusable(batch)
        found: dict[str, Any] = {}
        absent: dict[str, np.ndarray] = {}
        for field, normalise in (
            ("email", addresses.emails),
            ("phone", partial(addresses.phones, region=self.region)),
        ):
            if (given := column(field)) is None:
                found[field], absent[field] = pa.nulls(rows, pa.string()), np.ones(rows, bool)
                continue
            found[field], absent[field], left = normalise(given)
            slow |= left
        slow |= absent["email"] & absent["phone"]
        for field in _TEXT_FIELDS:
            if (given := column(field)) is not None:
                found[field], long = col.short_text(given, _TEXT_LIMIT)
                slow |= long
        for field, parse in self.parsers.items():
            if (given := column(field)) is None:
                continue
            if field == "created_at":
                found[field], bad = self._created_at_column(given)
            else:
                found[field], bad = col.by_distinct([given], _present(parse))
            slow |= bad
        for channel, address in _CHANNELS:
            given_columns = [
                given for name in _consent_fields(channel) if (given := column(name)) is not None
            ]
            statuses = np.full(rows, self.status or self.default_consent, object)
            none = np.full(rows, ChannelStatus.NONE, object)
            if self.status is None and given_columns:
                named = [name for name in _consent_fields(channel) if name in fields]
                consent = partial(self._consent_of, channel, named)
                statuses, bad = col.by_distinct(given_columns, consent)
                slow |= bad & ~absent[address]
            found[f"{channel}_status"] = np.where(absent[address], none, statuses)
        if self.columns.extras:
            found["attributes"] = self._attributes_column(batch)
        fast = np.flatnonzero(~slow)
        columns = {name: _take(values, fast) for name, values in found.items()}
        cleaned = ContactBlock(block, block.lines[fast], fast, columns)
        return cleaned, np.flatnonzero(slow).tolist()

    def _created_at_column(self, given: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_created_at` of a whole column: naive UTC datetimes (None where absent),
        and the rows left to it (rarer forms, local times a change of clock makes
        ambiguous, moments too far ahead)."""
        micros, left = col.utc_micros(given, str(self.tz), self.now + v.CLOCK_SKEW)
        blank = ~col.mask(pc.is_valid(col.cells(given)))
        moments = micros.astype("datetime64[us]").astype(object)
        moments[blank] = None
        return moments, left & ~blank

    def _consent_of(self, channel: str, names: list[str], *cells: Any) -> ChannelStatus:
        """:meth:`_consent` of the cells of the consent columns ``names`` of a file."""
        given = dict(zip(names, cells, strict=True))
        return self._consent(*(given.get(name) for name in _consent_fields(channel)))

    def _attributes_column(self, batch: pa.RecordBatch) -> np.ndarray:
        """The free attributes of each row of ``batch``, None where it has none."""
        extras = self.columns.extras
        columns = [batch.column(position).to_pylist() for position in extras.values()]
        found = np.full(batch.num_rows, None, object)
        for at, values in enumerate(zip(*columns, strict=True)):
            found[at] = _attributes(extras, values)
        return found

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Merge the batch into the store, in one transaction: rows with the same key
        merge together and into the stored contact with that key."""
        with self.engine.begin() as connection:
            existing = store.contacts_by_address(
                connection,
                (row.record["email"] for row in rows if row.record["email"]),
                (row.record["phone"] for row in rows if row.record["phone"]),
            )
            return self._write(connection, rows, existing)

    def write_block(self, cleaned: ContactBlock, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Write a block in one transaction: the contacts whose email and phone appear
        once in it and not in the store are inserted a column at a time; the others
        merge as :meth:`write` merges them, in file order."""
        emails = cleaned.columns["email"] + [row.record["email"] for row in rows]
        phones = cleaned.columns["phone"] + [row.record["phone"] for row in rows]
        with self.engine.begin() as connection:
            existing = store.contacts_by_address(
                connection, filter(None, emails), filter(None, phones)
            )
            seen_emails = Counter(filter(None, emails))
            seen_phones = Counter(filter(None, phones))
            seen_emails.update(c["email"] for c in existing if c["email"])
            seen_phones.update(c["phone"] for c in existing if c["phone"])
            alone = np.array(
                [
                    (email is None or seen_emails[email] == 1)
                    and (phone is None or seen_phones[phone] == 1)
                    for email, phone in zip(
                        cleaned.columns["email"], cleaned.columns["phone"], strict=True
                    )
                ],
                bool,
            )
            merging = cleaned.records(np.flatnonzero(~alone)) + rows
            merging.sort(key=lambda row: row.line)
            imported, merged, refusals = self._write(connection, merging, existing)
            cleaned.originals([row for row, _ in refusals if not row.values])
            imported += self._insert_block(connection, cleaned, np.flatnonzero(alone))
        return imported, merged, refusals

    def _insert_block(self, connection: Connection, cleaned: ContactBlock, rows: np.ndarray) -> int:
        """Insert these rows of a cleaned block as new contacts."""
        count = len(rows)
        if count:
            columns = {name: _take(values, rows) for name, values in cleaned.columns.items()}
            self._insert(connection, _fresh_columns(columns, count, self.now, self.source_name))
        return count

    def _write(
        self, connection: Connection, rows: list[Pending], existing: list[dict[str, Any]]
    ) -> tuple[int, int, Refusals]:
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
                # Both people are kept; the phone stays with the contact that has it.
                warning = v.FieldWarning("phone", "phone already belongs to another contact")
                refusals.append((row, warning))
                record = {**record, "phone": None, "sms_status": ChannelStatus.NONE}
                phone_slot = None
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
        if inserts:
            self._insert(connection, {name: [row[name] for row in inserts] for name in _BLANK})
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

    def _insert(self, connection: Connection, columns: dict[str, list[Any]]) -> None:
        """Insert new contacts given a column at a time, as :func:`_fresh_columns` makes
        them. A new contact whose address was suppressed before (unsubscribed, then
        erased) comes back suppressed, because the suppression outlives the person's data."""
        if self.check_suppressions:
            reasons = suppression_reasons(
                connection,
                self.workspace,
                (
                    (channel, value)
                    for channel, address in _CHANNELS
                    for value in columns[address]
                    if value
                ),
            )
            forced = {
                pair: _SUPPRESSION_STATUS.get(reason, ChannelStatus.UNSUBSCRIBED).value
                for pair, reason in reasons.items()
            }
            for channel, address in _CHANNELS:
                key = f"{channel}_status"
                columns[key] = [
                    forced.get((channel, value), status) if value else status
                    for value, status in zip(columns[address], columns[key], strict=True)
                ]
        store.insert_contact_columns(connection, columns)


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
        before = _STATUS[current.get(key) or ChannelStatus.NONE]
        after = merge_status(before, _STATUS[incoming.get(key) or ChannelStatus.NONE])
        if after != before:
            result[key] = after.value
            result[f"{key}_at"] = now
    result["updated_at"] = now
    return result


# Every inserted row names every column, so a batch is one executemany.
_BLANK = {column.name: None for column in contacts.columns if column.name != "id"}


def _fresh_columns(
    columns: Mapping[str, list[Any]], count: int, now: datetime, source: str
) -> dict[str, list[Any]]:
    """New contacts given a column at a time (None where a row says nothing) as the
    store keeps them: the creation date and source default to the import's, statuses are
    text stamped ``now``. The one rule of both paths (:func:`_fresh` is it for one row)."""
    stamps = [now] * count
    fresh = dict(columns)
    for name, default in (
        ("created_at", now),
        ("source", source),
        ("subscription_active", False),
        ("frequency", "normal"),
    ):
        given = columns.get(name)
        fresh[name] = (
            [default] * count
            if given is None
            else [default if value is None else value for value in given]
        )
    for channel, _ in _CHANNELS:
        fresh[f"{channel}_status"] = [_STATUS_TEXT[s] for s in columns[f"{channel}_status"]]
        fresh[f"{channel}_status_at"] = stamps
    fresh["updated_at"] = stamps
    return fresh


def _fresh(record: dict[str, Any], now: datetime, source: str) -> dict[str, Any]:
    """A new contact made of its first row, as :func:`_fresh_columns` makes it."""
    row = {name: [value] for name, value in {**_BLANK, **record}.items()}
    return {name: values[0] for name, values in _fresh_columns(row, 1, now, source).items()}


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


def _consent_fields(channel: str) -> tuple[str, str, str]:
    """The fields that say a channel's consent, in the order :meth:`ContactBatch._consent`
    reads them."""
    return f"{channel}_status", f"{channel}_blacklisted", f"{channel}_optin"


def _present(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` of a cell, None for an absent cell."""
    return lambda value: None if value is None else parse(value)


def _take(values: list[Any] | pa.Array | np.ndarray, rows: np.ndarray) -> list[Any]:
    """The values at ``rows`` as a list (objects shared between rows stay shared)."""
    if isinstance(values, list):
        return [values[at] for at in rows]
    if isinstance(values, np.ndarray):
        return list(values[rows])
    return values.take(pa.array(rows, pa.int64())).to_pylist()


def _language(value: Any) -> str:
    return str(value).strip().lower().replace("_", "-")[:8]


def _country(value: Any) -> str:
    text = str(value)
    code = text.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ValueError(f"invalid country {text!r}: use a two-letter code such as FR")
    return code


def _zone(value: Any) -> str:
    text = str(value)
    try:
        ZoneInfo(text.strip())
    except Exception:
        raise ValueError(f"unknown time zone {text!r}") from None
    return text.strip()


def _attributes(names: Iterable[str], cells: Sequence[Any]) -> dict[str, Any] | None:
    """A row's free attributes: its cells (``cells``) in the columns no field claims
    (``names``), the empty ones left out, as JSON holds them; None when all are empty."""
    found = {
        name: _plain(value)
        for name, value in zip(names, cells, strict=True)
        if value is not None and str(value).strip() != ""
    }
    return found or None


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
