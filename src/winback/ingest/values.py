"""Cleaning one value at a time: emails, phones, dates, amounts, flags, event types and
channels as users' files spell them. Each parser returns the normalised value or raises
``ValueError`` with a reason a person can act on; the importers quarantine the row with it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

# The address rules live in winback.addresses (one rule, one home); the importers reach
# them through this module, with the other cell parsers.
from winback.addresses import (  # noqa: F401
    EMAIL_LIMIT,
    LOCAL_PART_LIMIT,
    PLAIN_EMAIL,
    normalise_email,
    normalise_phone,
)
from winback.domain import Channel, ChannelStatus, EventType

# A CSV cell longer than this is refused (a pasted document, a base64 blob): no field of
# a contact or an event needs it, and it would bloat every index it touches.
MAX_FIELD_LENGTH = 65_536


def fold(text: str) -> str:
    """Lower case, no accents, only letters and digits: how headers and enum words are
    compared (``Téléphone`` and ``telephone`` and ``TELEPHONE`` are one word)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(char for char in decomposed if char.isalnum())


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
    return moment.astimezone(UTC).replace(tzinfo=None)


def _from_unix(seconds: float) -> datetime:
    if seconds > 1e11:
        seconds /= 1000
    return datetime.fromtimestamp(seconds, UTC)


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


def parse_list(value: object) -> list[str]:
    """Tags or interests from ``a, b; c | d`` or a list (JSON Lines, Parquet)."""
    if isinstance(value, list | tuple):
        items = [str(item) for item in value]
    else:
        items = re.split(r"[,;|]", str(value))
    return sorted({item.strip() for item in items if item and item.strip()})
