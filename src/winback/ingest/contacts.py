"""Importing contacts: recognise the kind of file (:mod:`winback.ingest.kinds`: an ESP's
or a shop's export says its own consent), clean each row, de-duplicate on the normalised
email (or the phone when there is no email), merge into what the store already holds (the
newest record wins, :func:`winback.ingest.records.merge`), and never turn a refusal
(unsubscribed, bounced, complained) back into a subscription. A purchase summary becomes
a purchase event (:mod:`winback.ingest.summaries`).

Every status an import sets, whether from ``--status``, from the file's kind or from a
row's consent columns, reaches the store in the records :meth:`ContactBatch._write`
merges and :meth:`ContactBatch._insert` inserts.

CSV and Parquet files are cleaned a block at a time (:meth:`ContactBatch.clean_block`):
addresses through :mod:`winback.ingest.addresses`, dates and names through Arrow
compute, the fields of few distinct values (countries, tags, statuses) by the row path's
own parsers called once per distinct value. The rows those checks cannot vouch for take
the row path (:meth:`ContactBatch.clean`). A contact whose email and phone appear once
in the block and nowhere in the store is inserted as it is, a column at a time; the
others (duplicates, contacts already stored) go through the row path's merge, so both
paths store the same contacts (a test holds them to it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
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
from winback.compliance.refusals import STATUS_REASONS, suppress_imported_refusals
from winback.compliance.suppression import suppression_reasons
from winback.domain import REFUSED_STATUSES, ChannelStatus
from winback.ingest import addresses, records, summaries
from winback.ingest import columnar as col
from winback.ingest import values as v
from winback.ingest.columns import CONTACT_ALIASES, ColumnMap
from winback.ingest.contact_merge import CHANNELS, Refusal, merge_rows
from winback.ingest.kinds import (
    PLAIN,
    FileKind,
    file_kind,
    kind_aliases,
    unpacked,
)
from winback.ingest.pipeline import (
    ImportReport,
    Pending,
    ProgressCallback,
    Refusals,
    mapped_source,
    run,
    source_name,
)
from winback.ingest.reader import Block
from winback.ingest.records import ContactBlock, consent_fields, present, take
from winback.store import contacts as store
from winback.store.schema import suppressions
from winback.words import fold
from winback.workspace import Workspace

# Plain text attributes copied as they are (trimmed, at most this long); the others
# have their own parser.
_TEXT_FIELDS = ("first_name", "last_name", "city", "gender", "source")
_TEXT_LIMIT = 200
# Moments read as created_at is read (the workspace zone, none in the future).
_MOMENTS = ("created_at", "optin_at", "consent_at", "modified_at", "last_order_at")
# A suppression kept after erasure or an earlier refusal: the status it forces on import.
_SUPPRESSION_STATUS = {reason: status for status, reason in STATUS_REASONS.items()}


class ContactBatch:
    def __init__(
        self,
        workspace: Workspace,
        columns: ColumnMap,
        now: datetime,
        status: ChannelStatus | None,
        source_name: str,
        kind: FileKind = PLAIN,
    ) -> None:
        self.workspace = workspace
        self.engine = workspace.engine
        self.columns = columns
        self.now_aware = now
        self.now = to_db(now)
        self.today = now.date()
        self.status = status
        self.source_name = source_name
        self.kind = kind
        # The status every address of a channel gets, whatever its row says: --status,
        # or the kind's own for the emails (a Mailchimp unsubscribed export...).
        self.forced = {"email": status or kind.status, "sms": status}
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
            "interests": records.parse_tags,
            "tags": records.parse_tags,
            "country": records.country,
            "language": records.language,
            "timezone": records.zone,
            "birth_year": partial(v.parse_birth_year, today=self.today),
            **{name: self._created_at for name in _MOMENTS},
            "subscription_active": v.parse_bool,
            "total_spent": v.parse_amount,
            "source_id": self._source_id,
        }

    def clean(self, values: list[Any], warnings: list[v.FieldWarning], line: int) -> dict[str, Any]:
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
                else self._consent(channel, *(get(name) for name in consent_fields(channel)))
            )
        row["sms_status"] = records.sms_statuses([phone], [row["sms_status"]])[0]
        columns = {name: [row.pop(name)] for name in records.DERIVED_FROM if name in row}
        derived = records.evidence(columns, 1)
        row.update({name: values[0] for name, values in {**columns, **derived}.items()})
        extras = self.columns.extras
        attributes = records.attributes(extras, [values[position] for position in extras.values()])
        if birthday:  # a birthday without a year (Mailchimp's MM/DD): no birth year is made up
            attributes = {**(attributes or {}), "birthday": birthday}
        if attributes:
            row["attributes"] = attributes
        return row

    def _created_at(self, value: Any) -> datetime:
        created_at = v.parse_datetime(value, self.tz)
        v.check_not_future(created_at, self.now)
        return created_at

    def _source_id(self, value: Any) -> str:
        return f"{self.kind.source or 'source'}:{str(value).strip()[:_TEXT_LIMIT]}"

    def _consent(self, channel: str, status: Any, blacklisted: Any, optin: Any) -> ChannelStatus:
        """A channel's status from a row's consent cells (None where absent): the file's
        forced status, else the explicit columns, a refusal among them winning (Brevo's
        ``*_BLACKLISTED`` at no is its subscription), else the kind's default: the
        workspace's ``default_consent`` for the emails of a plain list, and never SMS
        consent without an SMS consent column."""
        if forced := self.forced[channel]:
            return forced
        found: list[ChannelStatus] = []
        if status is not None:
            text = str(status)
            word = self.kind.status_words.get(fold(text))
            found.append(v.parse_status(text) if word is None else word)
        if blacklisted is not None:
            refused = v.parse_bool(blacklisted)
            found.append(ChannelStatus.UNSUBSCRIBED if refused else ChannelStatus.SUBSCRIBED)
        if optin is not None:
            found.append(ChannelStatus.SUBSCRIBED if v.parse_bool(optin) else ChannelStatus.NONE)
        refusals = [status for status in found if status in REFUSED_STATUSES]
        if refusals:
            return refusals[0]
        if found:
            return found[0]
        return self._default(channel)

    def _default(self, channel: str) -> ChannelStatus:
        """A channel's status when a row's consent columns say nothing."""
        if forced := self.forced[channel]:
            return forced
        if channel == "sms":
            return ChannelStatus.NONE
        return self.kind.email_default or self.default_consent

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
            if field in _MOMENTS:
                found[field], bad = self._created_at_column(given)
            else:
                found[field], bad = col.by_distinct([given], present(parse))
            slow |= bad
        for channel, address in CHANNELS:
            given_columns = [
                given for name in consent_fields(channel) if (given := column(name)) is not None
            ]
            statuses = np.full(rows, self._default(channel), object)
            none = np.full(rows, ChannelStatus.NONE, object)
            if self.forced[channel] is None and given_columns:
                named = [name for name in consent_fields(channel) if name in fields]
                consent = partial(self._consent_of, channel, named)
                statuses, bad = col.by_distinct(given_columns, consent)
                slow |= bad & ~absent[address]
            found[f"{channel}_status"] = np.where(absent[address], none, statuses)
        if self.columns.extras:
            found["attributes"] = self._attributes_column(batch)
        fast = np.flatnonzero(~slow)
        columns = {name: take(values, fast) for name, values in found.items()}
        columns["sms_status"] = records.sms_statuses(columns["phone"], columns["sms_status"])
        columns.update(records.evidence(columns, len(fast)))
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
        return self._consent(channel, *(given.get(name) for name in consent_fields(channel)))

    def _attributes_column(self, batch: pa.RecordBatch) -> np.ndarray:
        """The free attributes of each row of ``batch``, None where it has none."""
        extras = self.columns.extras
        columns = [batch.column(position).to_pylist() for position in extras.values()]
        found = np.full(batch.num_rows, None, object)
        for at, values in enumerate(zip(*columns, strict=True)):
            found[at] = records.attributes(extras, values)
        return found

    def write(self, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Merge the batch into the store, in one transaction: rows with the same key
        merge together and into the stored contact with that key."""
        found = [summaries.take_from_record(row.record) for row in rows]
        with self.engine.begin() as connection:
            existing = store.contacts_by_address(
                connection,
                (row.record["email"] for row in rows if row.record["email"]),
                (row.record["phone"] for row in rows if row.record["phone"]),
            )
            imported, merged, refusals, first = self._write(connection, rows, existing)
            known = [summary for summary in found if summary]
            summaries.write(connection, self.workspace, known, self.source_name, now=self.now_aware)
            suppress_imported_refusals(
                connection,
                self.workspace,
                [*(row.record for row in rows), *existing],
                now=self.now_aware,
                details={"file": self.source_name},
                first=first,
            )
            return imported, merged, refusals

    def write_block(self, cleaned: ContactBlock, rows: list[Pending]) -> tuple[int, int, Refusals]:
        """Write a block in one transaction: the contacts whose email and phone appear
        once in it and not in the store are inserted a column at a time; the others
        merge as :meth:`write` merges them, in file order."""
        emails = cleaned.columns["email"] + [row.record["email"] for row in rows]
        phones = cleaned.columns["phone"] + [row.record["phone"] for row in rows]
        found = summaries.take(cleaned.columns, cleaned.columns["email"], cleaned.columns["phone"])
        found += [s for row in rows if (s := summaries.take_from_record(row.record))]
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
            imported, merged, refusals, first = self._write(connection, merging, existing)
            cleaned.originals([row for row, _ in refusals if not row.values])
            imported += self._insert_block(connection, cleaned, np.flatnonzero(alone))
            summaries.write(connection, self.workspace, found, self.source_name, now=self.now_aware)
            suppress_imported_refusals(
                connection,
                self.workspace,
                [cleaned.columns, *(r.record for r in rows), *existing],
                now=self.now_aware,
                details={"file": self.source_name},
                first=first,
            )
        return imported, merged, refusals

    def _insert_block(self, connection: Connection, cleaned: ContactBlock, rows: np.ndarray) -> int:
        """Insert these rows of a cleaned block as new contacts."""
        count = len(rows)
        if count:
            columns = {name: take(values, rows) for name, values in cleaned.columns.items()}
            self._insert(
                connection, records.fresh_columns(columns, count, self.now, self.source_name)
            )
        return count

    def _write(
        self, connection: Connection, rows: list[Pending], existing: list[dict[str, Any]]
    ) -> tuple[int, int, Refusals, dict[tuple[str, str], Refusal]]:
        """Merge ``rows`` (in file order) with each other and with the ``existing``
        contacts they name (:func:`~winback.ingest.contact_merge.merge_rows`) and write
        the result: how many were new, merged, refused, and the first refused status of
        each (channel, address), which its suppression keeps."""
        forced = self._forced(
            connection,
            {
                key: [row.record[key] for row in rows] + [c[key] for c in existing]
                for key in ("email", "phone")
            },
        )
        merged = merge_rows(rows, existing, forced, self.now, self.source_name)
        stored = {c["id"]: c for c in existing}
        updates = [
            records.changes(stored[slot[1]], merged.slots[slot])
            for slot in merged.touched
            if slot[0] == "db"
        ]
        updates = [update for update in updates if len(update) > 1]
        # Phones let go first: another contact of the batch may have taken one.
        store.update_contacts(
            connection,
            [{"id": u["id"], "phone": None} for u in updates if "phone" in u],
        )
        for group in records.group_by_columns(updates):
            store.update_contacts(connection, group)
        inserts = [merged.slots[slot] for slot in merged.touched if slot[0] == "new"]
        if inserts:
            columns = {name: [row[name] for row in inserts] for name in records.BLANK}
            store.insert_contact_columns(connection, columns)
        ids = merged.written_ids(connection)
        audit.record(
            connection,
            (
                audit.status_change(
                    at=self.now_aware,
                    actor="import",
                    contact_id=ids[slot],
                    channel=channel,
                    status=status,
                    details={"file": self.source_name},
                )
                for slot, channel, status in merged.moves
            ),
        )
        return merged.imported, merged.merged, merged.refusals, merged.first_refusals(ids)

    def _forced(
        self, connection: Connection, columns: Mapping[str, Sequence[Any]]
    ) -> dict[tuple[str, str], str]:
        """The status a new contact must have on a channel whose address (among the
        ``email`` and ``phone`` of ``columns``) was suppressed before, by (channel,
        address): unsubscribed, then erased, it comes back suppressed, because the
        suppression outlives the person's data."""
        if not self.check_suppressions:
            return {}
        reasons = suppression_reasons(
            connection,
            self.workspace,
            (
                (channel, value)
                for channel, address in CHANNELS
                for value in columns[address]
                if value
            ),
        )
        return {
            pair: _SUPPRESSION_STATUS.get(reason, ChannelStatus.UNSUBSCRIBED).value
            for pair, reason in reasons.items()
        }

    def _insert(self, connection: Connection, columns: dict[str, list[Any]]) -> None:
        """Insert new contacts given a column at a time, as :func:`records.fresh_columns`
        makes them, each with the status :meth:`_forced` gives its addresses."""
        forced = self._forced(connection, columns)
        for channel, address in CHANNELS:
            key = f"{channel}_status"
            columns[key] = [
                forced.get((channel, value), status) if value else status
                for value, status in zip(columns[address], columns[key], strict=True)
            ]
        store.insert_contact_columns(connection, columns)


def import_contact_files(
    workspace: Workspace,
    path: Path,
    *,
    now: datetime,
    mapping: Mapping[str, str] | None = None,
    status: ChannelStatus | None = None,
    progress: ProgressCallback | None = None,
) -> list[ImportReport]:
    """:func:`import_contacts` of a file, or of each CSV of a ZIP (a Mailchimp audience
    export: its subscribed, unsubscribed and cleaned members), one report per file."""
    reports = []
    with unpacked(path) as files:
        for name, member in files:
            report = import_contacts(
                workspace, member, now=now, mapping=mapping, status=status, progress=progress
            )
            if member != path:
                report.file = f"{path}:{name}"
            reports.append(report)
    return reports


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
    kind = file_kind(path)
    aliases = kind_aliases(CONTACT_ALIASES, kind)
    with mapped_source(path, aliases, mapping, [("email", "phone")]) as (source, columns):
        columns = summaries.dated_only(columns)
        batch = ContactBatch(workspace, columns, now, status, source_name(path), kind)
        report = run(source, batch, "contacts", workspace.quarantine_dir, progress)
    report.recognised = kind.label
    return report
