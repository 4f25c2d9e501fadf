"""Suppression lists as the ESPs export them, read for ``winback suppress import``.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from zoneinfo import ZoneInfo

from winback.compliance.suppression import REASONS
from winback.ingest.values import fold, parse_bool, parse_datetime

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
