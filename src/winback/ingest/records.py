"""A contact's record as an import makes it: what a row's cells become (the parsers of
its fields, the consent evidence, the free attributes) and how two records of one person
merge: the newest wins (:func:`merge`). Both paths of :mod:`winback.ingest.contacts`, the
block path and the row path, build records with these functions, so they store the same
contacts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from winback.domain import ChannelStatus, merge_status
from winback.ingest import values as v
from winback.ingest.kinds import textable_all
from winback.ingest.pipeline import Pending
from winback.ingest.reader import Block
from winback.store.schema import contacts

# A status as a member and as the store keeps it, by member or text (the same key):
# calling the enum costs more than the rest of a merge.
STATUS = {status.value: status for status in ChannelStatus}
STATUS_TEXT = {status: status.value for status in ChannelStatus}
LIST_FIELDS = ("interests", "tags", "source_ids")


def merge(current: Mapping[str, Any], incoming: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """A contact merged with another row for the same person: the newest record wins,
    by the source's modification time when both have one (else the row, read later, is
    the newer): its values replace the older ones, an empty cell never erases anything,
    tags, interests and source ids are united, the earliest creation date and the latest
    modification time are kept, and statuses follow :func:`merge_status` whatever the
    age (a refusal is never lost).
    """
    result = dict(current)
    known, given = current.get("modified_at"), incoming.get("modified_at")
    older = known is not None and given is not None and given < known
    for name, value in incoming.items():
        if value is None or name in ("email_status", "sms_status"):
            continue
        if name in LIST_FIELDS:
            result[name] = sorted(set(current.get(name) or []) | set(value))
        elif name == "attributes":
            stored = current.get(name) or {}
            result[name] = {**value, **stored} if older else {**stored, **value}
        elif name == "created_at":
            result[name] = min(current.get(name) or value, value)
        elif name == "modified_at":
            result[name] = max(known or value, value)
        elif not older or current.get(name) is None:
            result[name] = value
    for channel in ("email", "sms"):
        key = f"{channel}_status"
        before = STATUS[current.get(key) or ChannelStatus.NONE]
        after = merge_status(before, STATUS[incoming.get(key) or ChannelStatus.NONE])
        if after != before:
            result[key] = after.value
            result[f"{key}_at"] = now
    result["updated_at"] = now
    return result


def status_moves(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (channel, status) pairs whose status :func:`merge` changed from ``before`` to
    ``after``: what the import's audit records, one per change of each row."""
    moves = []
    for channel in ("email", "sms"):
        key = f"{channel}_status"
        was, now = (STATUS[row.get(key) or ChannelStatus.NONE] for row in (before, after))
        if now != was:
            moves.append((channel, now.value))
    return moves


# Every inserted row names every column, so a batch is one executemany.
BLANK = {column.name: None for column in contacts.columns if column.name != "id"}


def fresh_columns(
    columns: Mapping[str, list[Any]], count: int, now: datetime, source: str
) -> dict[str, list[Any]]:
    """New contacts given a column at a time (None where a row says nothing) as the
    store keeps them: the creation date and source default to the import's, statuses are
    text stamped ``now``. The one rule of both paths (:func:`fresh` is it for one row)."""
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
    for channel in ("email", "sms"):
        fresh[f"{channel}_status"] = [STATUS_TEXT[s] for s in columns[f"{channel}_status"]]
        fresh[f"{channel}_status_at"] = stamps
    fresh["updated_at"] = stamps
    return fresh


def fresh(record: dict[str, Any], now: datetime, source: str) -> dict[str, Any]:
    """A new contact made of its first row, as :func:`fresh_columns` makes it."""
    row = {name: [value] for name, value in {**BLANK, **record}.items()}
    return {name: values[0] for name, values in fresh_columns(row, 1, now, source).items()}


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The columns a merge changed, with the id (``updated_at`` alone is no change)."""
    diff = {
        name: value
        for name, value in after.items()
        if name != "updated_at" and before.get(name) != value
    }
    if diff:
        diff["updated_at"] = after["updated_at"]
    return {"id": before["id"], **diff}


def group_by_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


# The parsed fields :func:`evidence` turns into the contact's columns.
DERIVED_FROM = ("created_at", "optin_at", "consent_at", "source_id")


def evidence(columns: dict[str, list[Any]], count: int) -> dict[str, list[Any]]:
    """The consent evidence and source ids of rows given a column at a time: takes
    ``optin_at``, ``consent_at`` and ``source_id`` out of ``columns`` and returns the
    contact columns they make. The evidence is the confirmation (double opt-in), else the
    opt-in; the contact was created at the earliest of its creation, opt-in and
    confirmation dates (the retention clock runs from it)."""
    optin, consent = columns.pop("optin_at", None), columns.pop("consent_at", None)
    ids = columns.pop("source_id", None)
    derived: dict[str, list[Any]] = {}
    if optin is not None or consent is not None:
        blank = [None] * count
        optin, consent = optin or blank, consent or blank
        derived["email_consent_at"] = [
            confirmed if confirmed is not None else opted
            for opted, confirmed in zip(optin, consent, strict=True)
        ]
        derived["created_at"] = [
            min(dates) if (dates := [d for d in moments if d is not None]) else None
            for moments in zip(columns.get("created_at") or blank, optin, consent, strict=True)
        ]
    if ids is not None:
        derived["source_ids"] = [None if at is None else [at] for at in ids]
    return derived


def sms_statuses(
    phones: Sequence[str | None], statuses: Sequence[ChannelStatus]
) -> list[ChannelStatus]:
    """Rows' SMS statuses once their numbers are known: an opt-in (subscribed) holds only
    for a number that can get a text (:func:`winback.ingest.kinds.textable`), and is
    none for a landline; other statuses (a refusal...) stay as they are."""
    asked = [
        at
        for at, (phone, status) in enumerate(zip(phones, statuses, strict=True))
        if phone and status == ChannelStatus.SUBSCRIBED
    ]
    found = list(statuses)
    for at, can in zip(asked, textable_all([phones[at] for at in asked]), strict=True):
        if not can:
            found[at] = ChannelStatus.NONE
    return found


def parse_tags(value: Any) -> list[str]:
    """Tags or interests, without the quotes Mailchimp puts round each (``"VIP","Club"``)."""
    return sorted({item.strip('"').strip() for item in v.parse_list(value)} - {""})


def language(value: Any) -> str:
    return str(value).strip().lower().replace("_", "-")[:8]


def country(value: Any) -> str:
    text = str(value)
    code = text.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ValueError(f"invalid country {text!r}: use a two-letter code such as FR")
    return code


def zone(value: Any) -> str:
    text = str(value)
    try:
        ZoneInfo(text.strip())
    except Exception:
        raise ValueError(f"unknown time zone {text!r}") from None
    return text.strip()


def attributes(names: Iterable[str], cells: Sequence[Any]) -> dict[str, Any] | None:
    """A row's free attributes: its cells (``cells``) in the columns no field claims
    (``names``), the empty ones left out, as JSON holds them; None when all are empty."""
    found = {
        name: plain_value(value)
        for name, value in zip(names, cells, strict=True)
        if value is not None and str(value).strip() != ""
    }
    return found or None


def plain_value(value: Any) -> Any:
    """A value JSON can hold (Parquet gives dates and decimals)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [plain_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_value(item) for key, item in value.items()}
    return str(value)


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


def consent_fields(channel: str) -> tuple[str, str, str]:
    """The fields that say a channel's consent, in the order :meth:`ContactBatch._consent`
    reads them."""
    return f"{channel}_status", f"{channel}_blacklisted", f"{channel}_optin"


def present(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``parse`` of a cell, None for an absent cell."""
    return lambda value: None if value is None else parse(value)


def take(values: list[Any] | pa.Array | np.ndarray, rows: np.ndarray) -> list[Any]:
    """The values at ``rows`` as a list (objects shared between rows stay shared)."""
    if isinstance(values, list):
        return [values[at] for at in rows]
    if isinstance(values, np.ndarray):
        return list(values[rows])
    return list(values.take(pa.array(rows, pa.int64())).to_pylist())
