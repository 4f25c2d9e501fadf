"""``winback suppress import``: suppression lists, winback's own export or the ESPs', read
and put on the list (:func:`winback.compliance.suppression_list.add_entries`).

Columns are found by their folded name (case, accents, spaces and punctuation ignored):

- the address: ``address`` (winback, Mailgun), ``email`` (SendGrid, Brevo's
  ``EMAIL``), ``Email Address`` (Mailchimp), ``EmailAddress`` (Postmark), ``phone``...;
  or ``hash`` (winback's export of an erased person) with ``channel``;
- the reason, when a row carries one: ``reason`` or ``SuppressionReason`` in the words of
  winback or of the ESPs (``HardBounce``, ``SpamComplaint``, ``unsubscribedViaEmail``,
  ``cleaned``...); a reason cell that is a sentence (SendGrid's and Mailgun's SMTP
  diagnostic) says nothing winback can use, and a SendGrid ``status`` (``5.1.1``) tells
  a hard bounce (5.x.x) from a soft one (4.x.x); Postmark's ``ManualSuppression`` from
  the ``Recipient`` is the person's own unsubscribe;
- when the person refused: ``suppressed_at`` (winback), ``UNSUB_TIME`` / ``CLEAN_TIME``
  (Mailchimp), ``created`` (SendGrid: Unix seconds or a date), ``created_at`` (Mailgun:
  RFC 2822), ``CreatedAt`` (Postmark), ``blockedAt`` (Brevo);
- Brevo's ``EMAIL_BLACKLISTED`` flag: only the flagged rows are refusals, the others are
  skipped (a whole contacts export must not suppress everyone).

A file without a reason per row takes the one its columns say (Mailchimp's unsubscribed
export: ``unsubscribe``; its cleaned export and Mailgun's bounces: ``bounce_hard``; a
Brevo blocklist flag and Mailgun's unsubscribes: ``unsubscribe``; SendGrid's spam
reports: ``complaint``), else the reason the user gives, else ``manual``. A file's name
is not read: exports whose columns say nothing (SendGrid's global unsubscribes,
Mailgun's complaints) take ``--reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from winback.compliance.suppression import REASONS, address_hash
from winback.compliance.suppression_list import SuppressionEntry, add_entries, parse_address
from winback.errors import InputFileError, NotFoundError
from winback.ingest.reader import open_source
from winback.ingest.values import parse_bool, parse_datetime
from winback.words import fold
from winback.workspace import Workspace

_ADDRESS = ("address", "email", "emailaddress", "phone", "adresse", "telephone", "mobile")
_REASON = ("reason", "suppressionreason")
_TIME = (
    "suppressedat",
    "refusedat",
    "unsubtime",
    "cleantime",
    "createdat",
    "created",
    "blockedat",
)
_FLAG = ("emailblacklisted", "emailblocklisted", "blacklisted", "blocklisted")
# An ESP's word for a reason, folded, and winback's reason.
_REASON_WORDS = {
    **{fold(reason): reason for reason in REASONS},
    "unsubscribed": "unsubscribe",
    "unsub": "unsubscribe",
    "optout": "unsubscribe",
    "optedout": "unsubscribe",
    "globalunsubscribe": "unsubscribe",
    "unsubscribedviaemail": "unsubscribe",
    "unsubscribedviaapi": "unsubscribe",
    "unsubscribedviama": "unsubscribe",
    "hardbounce": "bounce_hard",
    "bounce": "bounce_hard",
    "bounced": "bounce_hard",
    "cleaned": "bounce_hard",
    "invalidemail": "bounce_hard",
    "softbounce": "bounce_soft",
    "spamcomplaint": "complaint",
    "spamreport": "complaint",
    "spam": "complaint",
    "complained": "complaint",
    "contactflaggedasspam": "complaint",
    "manualsuppression": "manual",
    "adminblocked": "manual",
    "usersuppressed": "manual",
}


@dataclass(frozen=True)
class FileShape:
    """Where a suppression file keeps what an entry needs (positions in its header),
    and the reason its rows take when they carry none."""

    address: int | None
    hash: int | None
    channel: int | None
    reason: int | None
    status: int | None
    origin: int | None
    time: int | None
    flag: int | None
    file_reason: str


def _find(header: Sequence[str], names: Sequence[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    return None


def file_shape(header: Sequence[str], given_reason: str | None) -> FileShape:
    """The shape of a suppression file from its header (as written)."""
    folded = [fold(name) for name in header]
    flag = _find(folded, _FLAG)
    kind = next(
        (
            reason
            for present, reason in (
                ("cleantime" in folded, "bounce_hard"),
                ("unsubtime" in folded or flag is not None, "unsubscribe"),
                ("code" in folded and "error" in folded, "bounce_hard"),
                ("tags" in folded, "unsubscribe"),
                ("ip" in folded and "reason" not in folded, "complaint"),
            )
            if present
        ),
        None,
    )
    return FileShape(
        address=_find(folded, _ADDRESS),
        hash=_find(folded, ("hash",)),
        channel=_find(folded, ("channel",)),
        reason=_find(folded, _REASON),
        status=_find(folded, ("status",)),
        origin=_find(folded, ("origin",)),
        time=_find(folded, _TIME),
        flag=flag,
        file_reason=kind or given_reason or "manual",
    )


def is_refusal(shape: FileShape, flag: str | None) -> bool:
    """Whether a row is on the list at all: a Brevo row only when its blocklist flag is
    set (``ValueError`` for a flag that is no yes/no)."""
    return shape.flag is None or (flag is not None and parse_bool(flag))


def row_reason(shape: FileShape, reason: str | None, status: str | None, origin: str | None) -> str:
    """The reason of a row from its cells (None where absent); ``ValueError`` for a
    reason word that is none of winback's or the ESPs'."""
    if reason and " " not in reason.strip():
        word = fold(reason)
        if word not in _REASON_WORDS:
            raise ValueError(f"unknown reason {reason!r} (one of {', '.join(sorted(REASONS))})")
        found = _REASON_WORDS[word]
        if found == "manual" and origin and fold(origin) == "recipient":
            return "unsubscribe"
        return found
    if status and status.strip()[:1] in ("4", "5") and "." in status:
        return "bounce_hard" if status.strip().startswith("5") else "bounce_soft"
    return shape.file_reason


def row_time(text: str | None, tz: ZoneInfo) -> datetime | None:
    """When a row's refusal happened, aware UTC, or None when the row does not say;
    ISO 8601, ``dd/mm/yyyy``, Unix seconds, or RFC 2822 (Mailgun)."""
    if not text:
        return None
    try:
        return parse_datetime(text, tz).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ValueError(f"unreadable date {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


@dataclass
class SuppressionImport:
    """What ``winback suppress import`` did: entries added, already there, rows that
    are no refusal (a Brevo row without its blocklist flag), and the lines refused with
    their reason."""

    added: int = 0
    already: int = 0
    skipped: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_suppressions(
    workspace: Workspace, path: Path, *, reason: str | None, now: datetime
) -> SuppressionImport:
    """Add the addresses (or hashes) of a suppression file, winback's own or an ESP's
    export (see above), to the list; a row's own
    reason wins over ``reason``, a ``channel`` column over the address's own, and a
    row's date is when the person refused."""
    source = open_source(path)
    shape = file_shape(source.header, reason)
    if shape.address is None and shape.hash is None:
        source.close()
        raise InputFileError(
            f"{path}: no address column (address, email, Email Address, EmailAddress or "
            f"phone) and no hash column; the header is {source.header}"
        )
    tz = workspace.config.workspace.tz
    result = SuppressionImport()
    entries: list[SuppressionEntry] = []
    try:
        for line, values in source.rows:
            cell = _cells(values)
            try:
                if not is_refusal(shape, cell(shape.flag)):
                    result.skipped += 1
                    continue
                row = row_reason(shape, cell(shape.reason), cell(shape.status), cell(shape.origin))
                refused_at = row_time(cell(shape.time), tz)
                channel = cell(shape.channel)
                if channel not in (None, "email", "sms"):
                    raise ValueError(f"unknown channel {channel!r} (email or sms)")
                text = cell(shape.address)
                if text:
                    channel, key = parse_address(workspace, text, channel)
                    digest = address_hash(workspace, channel, key)
                    entries.append(SuppressionEntry(channel, digest, row, key, refused_at))
                else:
                    digest = (cell(shape.hash) or "").lower()
                    if len(digest) != 64 or not channel:
                        raise ValueError("a hash row needs a 64-digit hash and a channel")
                    entries.append(SuppressionEntry(channel, digest, row, refused_at=refused_at))
            except (ValueError, NotFoundError) as exc:
                result.rejected.append((line, str(exc)))
    finally:
        source.close()
    with workspace.engine.begin() as connection:
        result.added = add_entries(connection, workspace, entries, now)
    result.already = len(entries) - result.added
    return result


def _cells(values: list[Any]) -> Any:
    def cell(position: int | None) -> str | None:
        if position is None or position >= len(values) or values[position] is None:
            return None
        text = str(values[position]).strip()
        return text or None

    return cell
