"""Webhook payloads as files: ``winback import events FILE`` also reads what the ESPs
post to their webhooks, kept by the user or exported by a log: a JSON array (a SendGrid
delivery, or a list of records), JSON Lines (one record a line), or one request body a
line (a line holding an array gives each of its records).

Each record is read by its provider's own code, the one the live webhook runs
(:mod:`winback.web.webhooks`: ``records`` then ``read``), and recorded by
:func:`~winback.web.webhooks.record_webhook`, so a file's events get the same ids as the
live ones: a payload received live and imported again is stored once. A file is trusted
input the user chose: no signature is checked and no freshness window applies.

The provider is recognised from each record (SendGrid's ``sg_event_id``, Mailgun's
``event-data`` or ``log-level``, Postmark's ``RecordType``, an SNS envelope or an SES
event, Brevo's ``ts_event``/``ts_epoch``) or given (``--format``). A record that cannot be
read, holds nothing winback records (SendGrid's ``processed``, an SNS subscription's
confirmation...) or names no contact of the base is quarantined with its line and why.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from winback.errors import InputFileError
from winback.ingest.columns import ColumnMap
from winback.ingest.events import import_events
from winback.ingest.pipeline import ImportReport, Pending, ProgressCallback, Refusals, run
from winback.ingest.reader import Row, Source
from winback.ingest.values import FieldWarning
from winback.web.webhooks import PROVIDERS, Delivery, WebhookError, record_webhook
from winback.workspace import Workspace

FORMATS = tuple(PROVIDERS)
# What tells each provider's records apart: a key only it writes.
_MARKS = (
    ("sendgrid", ("sg_event_id", "sg_message_id")),
    ("mailgun", ("event-data", "log-level")),
    ("postmark", ("RecordType",)),
    ("ses", ("TopicArn", "eventType", "notificationType")),
    ("brevo", ("ts_event", "ts_epoch")),
)
_NAMES = {
    "sendgrid": "SendGrid",
    "mailgun": "Mailgun",
    "postmark": "Postmark",
    "ses": "Amazon SES",
    "brevo": "Brevo",
}


def provider_of(record: Any) -> str | None:
    """The provider whose webhook wrote ``record`` (one JSON value), or None."""
    if isinstance(record, list):
        record = record[0] if record else None
    if not isinstance(record, dict):
        return None
    for provider, keys in _MARKS:
        if any(key in record for key in keys):
            return provider
    return None


def import_event_file(
    workspace: Workspace,
    path: Path,
    *,
    now: datetime,
    format: str | None = None,
    mapping: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import an events file: webhook payloads (of ``format``, or of the providers its
    records show) through the webhooks' own reading, any other file as
    :func:`~winback.ingest.events.import_events` does."""
    if format is not None and format not in FORMATS:
        raise InputFileError(f"--format {format!r}: use one of {', '.join(FORMATS)}")
    if format is None and not _holds_payloads(path):
        return import_events(workspace, path, now=now, mapping=mapping, progress=progress)
    if mapping:
        raise InputFileError(f"{path}: --map applies to event columns, not to webhook payloads")
    source = _payload_source(path)
    try:
        with workspace.engine.begin() as connection:
            batch = _PayloadBatch(workspace, connection, format, now)
            return run(source, batch, "events", workspace.quarantine_dir, progress)
    finally:
        source.close()


def _first_value(path: Path) -> Any:
    """The first JSON value of the file: its first line's, or the whole file's."""
    try:
        with path.open("rb") as stream:
            first = stream.readline().lstrip(b"\xef\xbb\xbf")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return orjson.loads(first)
    except orjson.JSONDecodeError:
        try:
            return orjson.loads(path.read_bytes().lstrip(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            return None


def _holds_payloads(path: Path) -> bool:
    """Whether the file is JSON whose first record a provider's webhook wrote."""
    if path.suffix.lower() not in (".json", ".jsonl", ".ndjson", ".txt", ".log"):
        return False
    return provider_of(_first_value(path)) is not None


def _payload_source(path: Path) -> Source:
    """The file's records as rows of one column (the record's JSON): the elements of a
    JSON array file, else each line's value (each element of a line's array)."""
    data = path.read_bytes().lstrip(b"\xef\xbb\xbf")
    whole: Any = None
    with contextlib.suppress(orjson.JSONDecodeError):  # not one JSON value: JSON Lines
        whole = orjson.loads(data)

    read = 0

    def rows() -> Iterator[Row]:
        nonlocal read
        if isinstance(whole, list):
            for number, record in enumerate(whole, start=1):
                yield number, [orjson.dumps(record).decode()]
            read = len(data)
            return
        for number, line in enumerate(data.splitlines(keepends=True), start=1):
            read += len(line)
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield number, [line.decode("utf-8", errors="replace")]  # quarantined by clean
                continue
            for record in value if isinstance(value, list) else [value]:
                yield number, [orjson.dumps(record).decode()]

    return Source(path, "json", ["record"], rows(), len(data), lambda: read, lambda: None)


@dataclass
class _Record:
    provider: str
    delivery: Delivery


class _PayloadBatch:
    """The pipeline's batch for payload files: each row one provider record."""

    def __init__(
        self, workspace: Workspace, connection: Connection, format: str | None, now: datetime
    ) -> None:
        self.workspace = workspace
        self.connection = connection
        self.format = format
        self.now = now
        self.columns = ColumnMap(fields={}, extras={}, header=("record",))

    def clean(self, values: list[Any], warnings: list[FieldWarning], line: int) -> _Record:
        try:
            record = orjson.loads(values[0])
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc}") from None
        provider = self.format or provider_of(record)
        if provider is None:
            raise ValueError("no provider's webhook record (use --format to name it)")
        try:
            delivery = PROVIDERS[provider].deliver(self.workspace, record)
        except WebhookError as exc:
            raise ValueError(f"{_NAMES[provider]}: {exc}") from None
        if not delivery.changes:
            why = "; ".join(delivery.warnings) or "an event winback does not record"
            raise ValueError(f"nothing to record: {why}")
        return _Record(provider, delivery)

    def write(self, pending: Sequence[Pending]) -> tuple[int, int, Refusals]:
        imported = merged = 0
        refusals: Refusals = []
        for row in pending:
            record: _Record = row.record
            result = record_webhook(
                self.connection, self.workspace, record.provider, record.delivery, self.now
            )
            applied = result.recorded + result.topics_left + result.reactivated
            if result.unmatched == result.received:
                refusals.append((row, "unknown contact: no contact of the base has its address"))
            elif applied:
                imported += 1
            else:
                merged += 1
        return imported, merged, refusals
