"""Offers: the coupon code a step's message carries, unique to the contact.

A code is random and unguessable (60 bits from an alphabet without look-alike characters),
has an expiry, and is stored before the message goes out so the shop can be told about
it (``winback offers export``). A shop that makes its own codes imports a pool instead
(``winback offers import``) and steps with ``pool: true`` take codes from it.
"""

from __future__ import annotations

import csv
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from winback.clock import from_db, to_db, written_date
from winback.errors import InputFileError, WinbackError
from winback.journeys.definition import Offer
from winback.journeys.exits import exit_journeys
from winback.safe_output import csv_writer
from winback.store.chunks import chunks
from winback.store.schema import contacts, offers
from winback.workspace import Workspace

# No 0/O, 1/I/L: codes are typed by hand at a till or on a phone.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_GROUPS, _GROUP_SIZE = 3, 4


class OfferError(WinbackError):
    """An offer cannot be given: the code pool is empty, or a pool file is unusable."""

    exit_code = 3


def new_code(prefix: str = "WB") -> str:
    """A fresh random code such as ``WB-K7QM-3TZA-P9XC``."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(_GROUP_SIZE)) for _ in range(_GROUPS))
    return "-".join((prefix, *groups))


@dataclass(frozen=True)
class AssignedOffer:
    code: str
    percent: float | None
    amount: float | None
    expires_at: datetime

    def variables(self, language: str, valid_days: int) -> dict[str, Any]:
        """What a template sees as ``offer``; ``expires`` is the date written the way the
        contact's language writes it."""
        expires_on = self.expires_at.date()
        return {
            "code": self.code,
            "percent": self.percent,
            "amount": self.amount,
            "valid_days": valid_days,
            "expires_on": expires_on,
            "expires": written_date(expires_on, language),
        }


def assign_offer(
    connection: Connection,
    *,
    contact_id: int,
    enrollment_id: int | None,
    journey: str,
    step_id: str,
    offer: Offer,
    now: datetime,
) -> AssignedOffer:
    """The contact's code for this enrollment and step, created (or taken from the pool)
    the first time and the same one ever after, so a re-rendered message never hands out
    a second code."""
    found = connection.execute(
        select(offers.c.code, offers.c.percent, offers.c.amount, offers.c.expires_at).where(
            offers.c.enrollment_id == enrollment_id,
            offers.c.step_id == step_id,
            offers.c.contact_id == contact_id,
        )
    ).first()
    if found is not None:
        return AssignedOffer(found.code, found.percent, found.amount, _aware(found.expires_at))
    expires_at = now + timedelta(days=offer.valid_days)
    owner = {
        "contact_id": contact_id,
        "enrollment_id": enrollment_id,
        "journey": journey,
        "step_id": step_id,
        "assigned_at": to_db(now),
    }
    if offer.pool:
        return _take_from_pool(connection, offer, owner, expires_at)
    for _ in range(5):
        code = new_code()
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(offers),
                    {
                        **owner,
                        "code": code,
                        "percent": offer.percent,
                        "amount": offer.amount,
                        "from_pool": False,
                        "created_at": to_db(now),
                        "expires_at": to_db(expires_at),
                    },
                )
        except IntegrityError:
            continue  # the one-in-10^18 collision with an existing code: draw again
        return AssignedOffer(code, offer.percent, offer.amount, expires_at)
    raise OfferError("could not draw a unique coupon code in 5 tries: is the offers table full?")


def _take_from_pool(
    connection: Connection, offer: Offer, owner: Mapping[str, Any], expires_at: datetime
) -> AssignedOffer:
    kind = (
        offers.c.percent == offer.percent
        if offer.percent is not None
        else offers.c.amount == offer.amount
    )
    now = owner["assigned_at"]
    usable = and_(
        offers.c.from_pool.is_(True),
        offers.c.contact_id.is_(None),
        kind,
        (offers.c.expires_at.is_(None)) | (offers.c.expires_at > now),
    )
    row = connection.execute(
        select(offers.c.id, offers.c.code, offers.c.expires_at)
        .where(usable)
        .order_by(offers.c.id)
        .limit(1)
    ).first()
    what = f"{offer.percent:g} %" if offer.percent is not None else f"{offer.amount:g} off"
    if row is None:
        raise OfferError(
            f"the code pool has no unused code for {what}: import more with "
            "`winback offers import FILE` (or drop `pool: true` from the step)"
        )
    pool_expiry = _aware(row.expires_at) if row.expires_at is not None else None
    final_expiry = min(expires_at, pool_expiry) if pool_expiry else expires_at
    connection.execute(
        update(offers)
        .where(offers.c.id == row.id, offers.c.contact_id.is_(None))
        .values(**owner, expires_at=to_db(final_expiry))
    )
    return AssignedOffer(row.code, offer.percent, offer.amount, final_expiry)


def _aware(moment: datetime) -> datetime:
    aware = from_db(moment)
    assert aware is not None
    return aware


def read_pool(path: Path) -> list[dict[str, Any]]:
    """Codes from a CSV file with a ``code`` column and ``percent`` or ``amount`` (and
    optionally ``expires_at``, an ISO date). Errors name the file and line."""
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read the code pool ({exc.strerror})") from None
    rows: list[dict[str, Any]] = []
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if "code" not in columns or not columns & {"percent", "amount"}:
            raise InputFileError(
                f"{path}:1: a code pool needs a `code` column and `percent` or `amount` "
                f"(found: {', '.join(sorted(columns)) or 'nothing'})"
            )
        for line, raw in enumerate(reader, start=2):
            code = (raw.get("code") or "").strip()
            try:
                percent = float(raw["percent"]) if (raw.get("percent") or "").strip() else None
                amount = float(raw["amount"]) if (raw.get("amount") or "").strip() else None
                expiry = (raw.get("expires_at") or "").strip()
                expires_at = datetime.fromisoformat(expiry) if expiry else None
            except ValueError as exc:
                raise InputFileError(f"{path}:{line}: {exc}") from None
            if not code or (percent is None) == (amount is None):
                raise InputFileError(
                    f"{path}:{line}: each row needs a code and exactly one of percent or amount"
                )
            rows.append(
                {"code": code, "percent": percent, "amount": amount, "expires_at": expires_at}
            )
    return rows


def import_pool(connection: Connection, rows: Iterable[Mapping[str, Any]], now: datetime) -> int:
    """Add pool codes; a code already known (or met earlier in the file) is skipped.
    Returns how many were added. Only the file's codes are looked up: the offers table
    holds every code ever assigned."""
    by_code: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        by_code.setdefault(row["code"], row)
    known: set[str] = set()
    for batch in chunks(list(by_code)):
        known.update(
            connection.execute(select(offers.c.code).where(offers.c.code.in_(batch))).scalars()
        )
    fresh = [
        {
            "code": code,
            "percent": row["percent"],
            "amount": row["amount"],
            "expires_at": row["expires_at"],
            "from_pool": True,
            "created_at": to_db(now),
        }
        for code, row in by_code.items()
        if code not in known
    ]
    if fresh:
        connection.execute(insert(offers), fresh)
    return len(fresh)


EXPORT_COLUMNS = (
    "code",
    "percent",
    "amount",
    "expires_at",
    "email",
    "journey",
    "step",
    "assigned_at",
    "redeemed_at",
)


def export_offers(connection: Connection, out: TextIO, journey: str | None = None) -> int:
    """Write the assigned codes as CSV for the shop to load; returns the number of rows."""
    query = (
        select(
            offers.c.code,
            offers.c.percent,
            offers.c.amount,
            offers.c.expires_at,
            contacts.c.email,
            offers.c.journey,
            offers.c.step_id,
            offers.c.assigned_at,
            offers.c.redeemed_at,
        )
        .join(contacts, contacts.c.id == offers.c.contact_id)
        .where(offers.c.contact_id.is_not(None))
        .order_by(offers.c.id)
    )
    if journey is not None:
        query = query.where(offers.c.journey == journey)
    writer = csv_writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in connection.execute(query):
        writer.writerow(
            [
                ""
                if value is None
                else (_aware(value).isoformat() if isinstance(value, datetime) else value)
                for value in row
            ]
        )
        count += 1
    return count


@dataclass(frozen=True)
class PoolImport:
    """What ``winback offers import`` did: codes read from the file, and added to the
    pool (the others were known already)."""

    read: int
    added: int


def import_pool_file(workspace: Workspace, path: Path, *, now: datetime) -> PoolImport:
    """``winback offers import FILE``: add a pool of codes."""
    rows = read_pool(path)
    with workspace.engine.begin() as connection:
        return PoolImport(len(rows), import_pool(connection, rows, now))


def export_offers_csv(workspace: Workspace, out: TextIO, journey: str | None = None) -> int:
    """``winback offers export``: the assigned codes as CSV on ``out``."""
    with workspace.engine.connect() as connection:
        return export_offers(connection, out, journey)


def redeem_codes(
    connection: Connection,
    uses: Iterable[tuple[str, datetime]],
    *,
    actor: str,
) -> int:
    """Mark redeemed the issued codes among ``uses`` (a code a purchase carried, and when:
    aware datetimes), at their first use; credit the step that sent each (the offer keeps
    its journey and step) and end the contact's journey as a conversion (``reactivated``,
    outcome ``redeemed CODE``), with an audit record. Codes compare without regard to
    case, as shops do. Returns how many codes were newly redeemed."""
    first: dict[str, datetime] = {}
    for code, at in uses:
        key = code.strip().upper()
        if key and (key not in first or at < first[key]):
            first[key] = at
    redeemed = 0
    for part in chunks(sorted(first)):
        found = connection.execute(
            select(offers.c.id, offers.c.code, offers.c.contact_id).where(
                func.upper(offers.c.code).in_(part),
                offers.c.redeemed_at.is_(None),
                offers.c.contact_id.is_not(None),
            )
        ).all()
        for offer_id, code, contact_id in found:
            at = first[code.upper()]
            connection.execute(
                update(offers).where(offers.c.id == offer_id).values(redeemed_at=to_db(at))
            )
            exit_journeys(
                connection,
                contact_id,
                outcome=f"redeemed {code}",
                now=at,
                actor=actor,
                status="reactivated",
            )
            redeemed += 1
    return redeemed
