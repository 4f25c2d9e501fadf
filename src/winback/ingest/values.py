"""Cleaning one value at a time: emails, phones, dates, amounts, flags, event types and
channels as users' files spell them. Each parser returns the normalised value or raises
``ValueError`` with a reason a person can act on.

What the importers do with that reason is one rule, here too: only identity rejects a
row (:func:`identity`: a contact with neither a valid email nor a valid phone). A bad
optional field (a date, a birth year, a phone beside a valid email, an amount...) is
left empty and reported as a :class:`FieldWarning` (:func:`optional`); the row is kept.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache, partial
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from winback.addresses import normalise_email, read_phone
from winback.domain import Channel, ChannelStatus, EventType
from winback.words import fold

# A cell longer than this is left empty with a warning (a pasted document, a base64
# blob): no field of a contact or an event needs it, and it would bloat every index.
MAX_FIELD_LENGTH = 65_536


@dataclass(frozen=True)
class FieldWarning:
    """A field an importer left empty (or read by a guess) without rejecting its row:
    ``field`` as the importer names it, and the reason."""

    field: str
    reason: str


def optional(
    field: str, parse: Callable[[Any], Any], value: Any, warnings: list[FieldWarning]
) -> Any:
    """``parse(value)``, or None with a warning added to ``warnings`` when ``parse``
    refuses it: a bad optional field is left empty and its row is kept."""
    try:
        return parse(value)
    except ValueError as exc:
        warnings.append(FieldWarning(field, str(exc)))
        return None


def identity(
    email: Any, phone: Any, region: str, warnings: list[FieldWarning]
) -> tuple[str | None, str | None]:
    """A contact's normalised email and phone from its cells (None where absent). Only
    identity rejects a contact: ``ValueError`` when neither is valid (the email's reason
    first); one bad address beside a valid one is left empty with a warning."""
    problems: list[FieldWarning] = []
    found_email = (
        optional("email", normalise_email, str(email), problems) if email is not None else None
    )
    found_phone = None
    if phone is not None:
        read = optional("phone", partial(read_phone, region=region), str(phone), problems)
        if read is not None:
            found_phone, note = read
            if note:
                problems.append(FieldWarning("phone", note))
    if found_email is None and found_phone is None:
        if problems:
            raise ValueError(problems[0].reason)
        raise ValueError("no email and no phone: a contact needs an address")
    warnings.extend(problems)
    return found_email, found_phone


_DMY = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_UNIX = re.compile(r"^\d{9,10}(?:\.\d+)?$")
_UNIX_MS = re.compile(r"^\d{12,13}$")


def parse_datetime(value: object, tz: ZoneInfo) -> datetime:
    """A moment as naive UTC (how the store keeps time) from what files contain: ISO 8601
    with or without a zone or a time, ``dd/mm/yyyy [hh:mm[:ss]]`` (the French order), Unix
    seconds or milliseconds, or an already typed date/datetime (Parquet). Values without a
    zone are read in ``tz``, the workspace zone.

    >>> parse_datetime("31/12/2024 23:30", ZoneInfo("UTC"))
    datetime.datetime(2024, 12, 31, 23, 30)
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        moment = _from_unix(float(value))
    else:
        moment = _parse_datetime_text(str(value).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        return moment.astimezone(UTC).replace(tzinfo=None)
    except (
        OverflowError
    ):  # 0001-01-01 east of UTC, 9999-12-31 west of it: the null dates of some exports
        raise ValueError(f"date out of range {value!r}: no year before 1 or after 9999") from None


def _from_unix(seconds: float) -> datetime:
    if seconds > 1e11:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"date out of range {seconds!r}: not a Unix time") from None


def _parse_datetime_text(text: str) -> datetime:
    if not text:
        raise ValueError("empty date")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00", 1) if text[-1:] == "Z" else text)
    except ValueError:
        pass
    match = _DMY.match(text)
    if match:
        day, month, year, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
            )
        except ValueError:
            raise ValueError(f"unparseable date {text!r}: no such day") from None
    if _UNIX.match(text) or _UNIX_MS.match(text):
        return _from_unix(float(text))
    raise ValueError(
        f"unparseable date {text!r}: use ISO 8601 (2024-03-01 or 2024-03-01T14:05:00+01:00), "
        "dd/mm/yyyy, or Unix seconds"
    )


# How far past ``now`` a file's moment may lie (the clocks of the systems that wrote it).
CLOCK_SKEW = timedelta(days=1)


def check_not_future(moment: datetime, now: datetime) -> None:
    """Refuse a moment after ``now`` (naive UTC both), allowing :data:`CLOCK_SKEW`."""
    if moment > now + CLOCK_SKEW:
        raise ValueError(f"date in the future ({moment:%Y-%m-%d %H:%M} UTC)")


_AMOUNT_JUNK = re.compile(r"[\s\u00a0\u202f€$£]|EUR|USD|GBP", re.IGNORECASE)


def parse_amount(value: object) -> float:
    """An amount from ``12.50``, ``12,50``, ``1 234,50 €`` or ``1,234.50``; not negative.

    >>> parse_amount("1 234,50 €")
    1234.5
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        amount = float(value)
    else:
        text = _AMOUNT_JUNK.sub("", str(value))
        if "," in text and "." in text:
            # The later separator is the decimal one: 1.234,50 or 1,234.50.
            if text.rfind(",") > text.rfind("."):
                text = text.replace(".", "").replace(",", ".")
            else:
                text = text.replace(",", "")
        else:
            text = text.replace(",", ".")
        try:
            amount = float(text)
        except ValueError:
            raise ValueError(f"unparseable amount {value!r}") from None
    if amount != amount or amount in (float("inf"), float("-inf")):
        raise ValueError(f"unparseable amount {value!r}")
    if amount < 0:
        raise ValueError(f"negative amount {value!r}")
    return amount


_TRUE = {"1", "true", "yes", "y", "oui", "o", "vrai", "t", "x", "optin", "optedin", "subscribed"}
_FALSE = {"0", "false", "no", "n", "non", "faux", "f", "", "optout", "optedout"}


def parse_bool(value: object) -> bool:
    """A yes/no flag as files write it (1/0, true/false, yes/no, oui/non, x)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    word = fold(str(value))
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


Member = TypeVar("Member", bound=StrEnum)


class Words(Generic[Member]):
    """The members of an enum and the other words files use for them, compared folded;
    an unknown word is an error that lists the members."""

    def __init__(self, kind: type[Member], what: str, synonyms: Mapping[str, Member]) -> None:
        self.what = what
        self.known = ", ".join(member.value for member in kind)
        self.table = {fold(member.value): member for member in kind}
        self.table.update({fold(word): member for word, member in synonyms.items()})

    def parse(self, value: str) -> Member:
        member = self.table.get(fold(value))
        if member is None:
            raise ValueError(f"unknown {self.what} {value!r} (known: {self.known})")
        return member


_EVENT_WORDS = Words(
    EventType,
    "event type",
    {
        "send": EventType.SENT,
        "envoi": EventType.SENT,
        "envoye": EventType.SENT,
        "processed": EventType.SENT,
        "delivery": EventType.DELIVERED,
        "delivre": EventType.DELIVERED,
        "livre": EventType.DELIVERED,
        "opened": EventType.OPEN,
        "opens": EventType.OPEN,
        "ouverture": EventType.OPEN,
        "ouvert": EventType.OPEN,
        "clicked": EventType.CLICK,
        "clicks": EventType.CLICK,
        "clic": EventType.CLICK,
        "order": EventType.PURCHASE,
        "orders": EventType.PURCHASE,
        "achat": EventType.PURCHASE,
        "commande": EventType.PURCHASE,
        "transaction": EventType.PURCHASE,
        "placedorder": EventType.PURCHASE,
        "pageview": EventType.VISIT,
        "session": EventType.VISIT,
        "viewedpage": EventType.VISIT,
        "activeonsite": EventType.VISIT,
        "signin": EventType.LOGIN,
        "connexion": EventType.LOGIN,
        "replied": EventType.REPLY,
        "reponse": EventType.REPLY,
        "unsubscribed": EventType.UNSUBSCRIBE,
        "unsub": EventType.UNSUBSCRIBE,
        "optout": EventType.UNSUBSCRIBE,
        "desabonnement": EventType.UNSUBSCRIBE,
        "desinscription": EventType.UNSUBSCRIBE,
        "hardbounce": EventType.BOUNCE_HARD,
        "bouncehard": EventType.BOUNCE_HARD,
        "softbounce": EventType.BOUNCE_SOFT,
        "bouncesoft": EventType.BOUNCE_SOFT,
        "spam": EventType.COMPLAINT,
        "spamreport": EventType.COMPLAINT,
        "complained": EventType.COMPLAINT,
        "plainte": EventType.COMPLAINT,
    },
)


@lru_cache(maxsize=1024)
def parse_event_type(value: str) -> EventType:
    """An event type from its usual spellings (``opened``, ``Ouverture``, ``hard_bounce``)."""
    return _EVENT_WORDS.parse(value)


_CHANNEL_WORDS = Words(
    Channel,
    "channel",
    {
        "mail": Channel.EMAIL,
        "courriel": Channel.EMAIL,
        "text": Channel.SMS,
        "mobile": Channel.SMS,
        "website": Channel.WEB,
        "site": Channel.WEB,
        "online": Channel.WEB,
        "ecommerce": Channel.WEB,
        "application": Channel.APP,
        "mobileapp": Channel.APP,
        "shop": Channel.STORE,
        "magasin": Channel.STORE,
        "boutique": Channel.STORE,
        "pos": Channel.STORE,
        "instore": Channel.STORE,
    },
)

# Where an event comes from when the file does not say: messages are email unless they
# are replies (SMS), purchases and visits happen on the website, logins in the app.
DEFAULT_CHANNEL: dict[EventType, Channel] = {kind: Channel.EMAIL for kind in EventType} | {
    EventType.REPLY: Channel.SMS,
    EventType.PURCHASE: Channel.WEB,
    EventType.VISIT: Channel.WEB,
    EventType.LOGIN: Channel.APP,
}


@lru_cache(maxsize=1024)
def parse_channel(value: str) -> Channel:
    """A channel from its usual spellings (``Email``, ``courriel``, ``magasin``)."""
    return _CHANNEL_WORDS.parse(value)


_STATUS_WORDS = Words(
    ChannelStatus,
    "status",
    {
        "optin": ChannelStatus.SUBSCRIBED,
        "optedin": ChannelStatus.SUBSCRIBED,
        "active": ChannelStatus.SUBSCRIBED,
        "inscrit": ChannelStatus.SUBSCRIBED,
        "abonne": ChannelStatus.SUBSCRIBED,
        "optout": ChannelStatus.UNSUBSCRIBED,
        "optedout": ChannelStatus.UNSUBSCRIBED,
        "desabonne": ChannelStatus.UNSUBSCRIBED,
        "desinscrit": ChannelStatus.UNSUBSCRIBED,
        "blacklisted": ChannelStatus.UNSUBSCRIBED,
        "cleaned": ChannelStatus.BOUNCED,
        "bounce": ChannelStatus.BOUNCED,
        "hardbounce": ChannelStatus.BOUNCED,
        "invalid": ChannelStatus.BOUNCED,
        "spam": ChannelStatus.COMPLAINED,
        "complaint": ChannelStatus.COMPLAINED,
        "pending": ChannelStatus.NONE,
        "transactional": ChannelStatus.NONE,
        "nonsubscribed": ChannelStatus.NONE,
    },
)


def parse_status(value: str) -> ChannelStatus:
    """A channel status from the words ESP exports use (Mailchimp's ``cleaned`` is a
    bounce, ``pending`` has no consent yet)."""
    return _STATUS_WORDS.parse(value)


def parse_birth_year(value: object, today: date) -> int:
    """A birth year from a year or a full date of birth, within a plausible range."""
    text = str(value).strip()
    if isinstance(value, date):
        year = value.year
    elif re.fullmatch(r"\d{4}", text):
        year = int(text)
    else:
        year = parse_datetime(text, ZoneInfo("UTC")).year
    if not today.year - 120 <= year <= today.year:
        raise ValueError(f"implausible birth year {value!r}")
    return year


_MONTH_DAY = re.compile(r"^(\d{1,2})/(\d{1,2})$")


def parse_month_day(value: object) -> str | None:
    """A birthday without a year, as Mailchimp's Birthday field exports it (``MM/DD``),
    in ISO 8601's month-day form; None when ``value`` has not that shape. Raises
    ``ValueError`` for a month-day that no year has.

    >>> parse_month_day("03/14")
    '--03-14'
    """
    match = _MONTH_DAY.match(str(value).strip())
    if match is None:
        return None
    month, day = int(match[1]), int(match[2])
    try:
        date(2000, month, day)  # a leap year: 02/29 is a birthday
    except ValueError:
        raise ValueError(f"invalid birthday {value!r}: no such day (MM/DD)") from None
    return f"--{month:02d}-{day:02d}"


def parse_birthday(value: object, today: date) -> int | str:
    """A birth year from a year or a date of birth (:func:`parse_birth_year`), or a
    birthday without a year from Mailchimp's MM/DD (:func:`parse_month_day`): no birth
    year is made up for it."""
    month_day = parse_month_day(value)
    return parse_birth_year(value, today) if month_day is None else month_day


def parse_list(value: object) -> list[str]:
    """Tags or interests from ``a, b; c | d``, a list (JSON Lines, Parquet), or
    quoted items as Mailchimp exports its TAGS (``"Clients","VIP, Paris"``).

    >>> parse_list('"Clients","VIP"')
    ['Clients', 'VIP']
    """
    if isinstance(value, list | tuple):
        items = [str(item) for item in value]
    elif '"' in (text := str(value)):
        items = [
            item for row in csv.reader(text.splitlines(), skipinitialspace=True) for item in row
        ]
    else:
        items = re.split(r"[,;|]", text)
    return sorted({item.strip() for item in items if item and item.strip()})
