"""A batch of contact rows merged, in memory, with each other and with the stored contacts
they name, each row as if it came alone in file order: where a file's batches end then
changes nothing. A row finds its contact by email, else phone; a phone that belongs to
another contact stays there (a warning); a phone a contact let go is free for the next
rows; each status a row changes is a move (the import's audit records one each); a new
contact's address that was suppressed before comes back with the status of its
suppression, and the first refusal of each address is the one its suppression keeps.
:meth:`winback.ingest.contacts.ContactBatch._write` writes the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection

from winback.domain import REFUSED_STATUSES, ChannelStatus
from winback.ingest import records
from winback.ingest import values as v
from winback.ingest.pipeline import Pending, Refusals
from winback.store import contacts as store

#: (channel, the contact column of its address).
CHANNELS = (("email", "email"), ("sms", "phone"))
_ADDRESS = dict(CHANNELS)

#: ("db", id) for a stored contact, ("new", n) for one the batch creates.
Slot = tuple[str, int]


class Refusal(NamedTuple):
    """The first refusal of an address in an import: what its suppression keeps."""

    status: str
    contact_id: int
    at: datetime | None


@dataclass
class Merged:
    """What :func:`merge_rows` made of a batch."""

    #: Every contact the batch knows, by slot, as it ends.
    slots: dict[Slot, dict[str, Any]]
    #: The statuses forced on new contacts by (channel, address): see :func:`merge_rows`.
    forced: dict[tuple[str, str], str]
    touched: set[Slot] = field(default_factory=set)
    #: Each status a row changed, in file order: (slot, channel, status).
    moves: list[tuple[Slot, str, str]] = field(default_factory=list)
    #: The first refusal of each (channel, address): status, slot, when it took effect.
    refused: dict[tuple[str, str], tuple[str, Slot, datetime | None]] = field(default_factory=dict)
    refusals: Refusals = field(default_factory=list)
    imported: int = 0
    merged: int = 0

    def written_ids(self, connection: Connection) -> dict[Slot, int]:
        """The contact ids, once written, of the slots :attr:`moves` and :attr:`refused`
        name (one look-up for the contacts the batch inserted)."""
        return self.ids(
            connection,
            [slot for slot, _, _ in self.moves] + [slot for _, slot, _ in self.refused.values()],
        )

    def first_refusals(self, ids: Mapping[Slot, int]) -> dict[tuple[str, str], Refusal]:
        """The first refusal of each (channel, address) the batch saw refused: what its
        suppression keeps, with the contact that refused it (``ids``: from
        :meth:`written_ids`), an address a contact let go afterwards included."""
        return {
            pair: Refusal(status, ids[slot], at)
            for pair, (status, slot, at) in self.refused.items()
        }

    def ids(self, connection: Connection, slots: Iterable[Slot]) -> dict[Slot, int]:
        """The contact ids of these slots once written: a stored contact's own, and
        those of the contacts the batch inserted, found by their email, else phone."""
        wanted = set(slots)
        ids = {slot: slot[1] for slot in wanted if slot[0] == "db"}
        new = {slot: self.slots[slot] for slot in wanted if slot[0] == "new"}
        if new:
            found = store.contacts_by_address(
                connection,
                (c["email"] for c in new.values() if c["email"]),
                (c["phone"] for c in new.values() if c["phone"]),
            )
            by_email = {c["email"]: c["id"] for c in found if c["email"]}
            by_phone = {c["phone"]: c["id"] for c in found if c["phone"]}
            for slot, contact in new.items():
                ids[slot] = by_email.get(contact["email"]) or by_phone[contact["phone"]]
        return ids


def merge_rows(
    rows: list[Pending],
    existing: list[dict[str, Any]],
    forced: dict[tuple[str, str], str],
    now: datetime,
    source: str,
) -> Merged:
    """Merge ``rows`` (cleaned records, in file order) with each other and with the
    ``existing`` contacts they name. ``forced``: the status a new contact takes on a
    channel whose address is suppressed, by (channel, address), for every address of
    ``rows`` and ``existing``; an address a row refuses joins it, as its suppression
    will."""
    merged = Merged({("db", c["id"]): c for c in existing}, forced)
    index: dict[str, dict[str, Slot]] = {
        key: {c[key]: ("db", c["id"]) for c in existing if c[key]} for key in ("email", "phone")
    }
    for contact in existing:
        _note_refusals(merged, ("db", contact["id"]))
    for row in rows:
        _merge_row(merged, index, row, now, source)
    return merged


def _merge_row(
    merged: Merged, index: dict[str, dict[str, Slot]], row: Pending, now: datetime, source: str
) -> None:
    record = row.record
    email_slot = index["email"].get(record["email"]) if record["email"] else None
    phone_slot = index["phone"].get(record["phone"]) if record["phone"] else None
    if (
        phone_slot is not None
        and email_slot != phone_slot
        and (email_slot is not None or (record["email"] and merged.slots[phone_slot]["email"]))
    ):
        # Both people are kept; the phone stays with the contact that has it.
        warning = v.FieldWarning("phone", "phone already belongs to another contact")
        merged.refusals.append((row, warning))
        record = {**record, "phone": None, "sms_status": ChannelStatus.NONE}
        phone_slot = None
    slot = email_slot or phone_slot
    before: dict[str, Any] = {}
    if slot is None:
        merged.imported += 1
        slot = ("new", len(merged.slots))
        merged.slots[slot] = _fresh(record, merged.forced, now, source)
    else:
        merged.merged += 1
        before = merged.slots[slot]
        merged.slots[slot] = records.merge(before, record, now)
    after = merged.slots[slot]
    merged.touched.add(slot)
    if before:
        merged.moves += [(slot, channel, s) for channel, s in records.status_moves(before, after)]
    _note_refusals(merged, slot)
    # The addresses the contact has now: one it let go is free for the next rows.
    for key, slots in index.items():
        gone, kept = before.get(key), after[key]
        if gone and gone != kept and slots.get(gone) == slot:
            del slots[gone]
        if kept:
            slots[kept] = slot


def _note_refusals(merged: Merged, slot: Slot) -> None:
    """Note the addresses ``slot`` holds refused now and that are not suppressed yet:
    the first refusal of each is what its suppression keeps, and whoever takes the
    address next gets its status."""
    contact = merged.slots[slot]
    for channel, column in CHANNELS:
        status, address = contact[f"{channel}_status"], contact[column]
        if address and status in REFUSED_STATUSES and (channel, address) not in merged.forced:
            at = contact.get(f"{channel}_status_at")
            merged.refused.setdefault((channel, address), (str(status), slot, at))
            merged.forced.setdefault((channel, address), str(status))


def _fresh(
    record: dict[str, Any], forced: Mapping[tuple[str, str], str], now: datetime, source: str
) -> dict[str, Any]:
    """A new contact made of its first row, with the status ``forced`` gives an address."""
    contact = records.fresh(record, now, source)
    for channel, address in CHANNELS:
        status = forced.get((channel, contact[address]))
        if status is not None:
            contact[f"{channel}_status"] = status
    return contact
