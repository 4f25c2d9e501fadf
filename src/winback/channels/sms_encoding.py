"""How long an SMS is, and what it costs in parts (3GPP TS 23.038 and 23.040).

A text made only of GSM-7 characters travels in 7-bit septets: 160 in one part, 153 per
part once it must be split (the user data header takes 7). The extension table (``€``,
``[``, ``{``...) costs two septets each, and a part never ends between the two. Any other
character (``ê``, ``ç``, ``’``, emoji) sends the whole text as UCS-2: 70 UTF-16 units in
one part, 67 per part when split, and a surrogate pair (an emoji) is never cut in two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# The basic table, 128 positions less the escape code that introduces the extension.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

Encoding = Literal["GSM-7", "UCS-2"]

_SINGLE = {"GSM-7": 160, "UCS-2": 70}
_MULTI = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SmsLength:
    """The encoding of a text, its length in units (septets or UTF-16 code units) and
    the number of parts it is billed as."""

    encoding: Encoding
    units: int
    parts: int


def encoding_of(text: str) -> Encoding:
    """GSM-7 when every character is in the basic or extension table, else UCS-2."""
    allowed = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(char in allowed for char in text) else "UCS-2"


def _unit_lengths(text: str, encoding: Encoding) -> list[int]:
    """Units taken by each character: 2 for GSM-7 extensions and characters outside
    the Basic Multilingual Plane in UCS-2, else 1."""
    if encoding == "GSM-7":
        return [2 if char in GSM7_EXTENSION else 1 for char in text]
    return [2 if ord(char) > 0xFFFF else 1 for char in text]


def split_parts(text: str) -> list[str]:
    """The parts a text is sent as, in order; ``""`` has none."""
    encoding = encoding_of(text)
    sizes = _unit_lengths(text, encoding)
    if sum(sizes) <= _SINGLE[encoding]:
        return [text] if text else []
    capacity = _MULTI[encoding]
    parts: list[str] = []
    start = used = 0
    for index, size in enumerate(sizes):
        if used + size > capacity:
            parts.append(text[start:index])
            start, used = index, 0
        used += size
    parts.append(text[start:])
    return parts


def sms_length(text: str) -> SmsLength:
    """Encoding, units and parts of ``text``, as the operator counts them.

    >>> sms_length("Bonjour ! -20 % ce week-end. STOP au 36111")
    SmsLength(encoding='GSM-7', units=42, parts=1)
    """
    encoding = encoding_of(text)
    return SmsLength(
        encoding=encoding,
        units=sum(_unit_lengths(text, encoding)),
        parts=len(split_parts(text)),
    )


def with_stop_mention(text: str, mention: str) -> str:
    """The text with the opt-out mention on its own line at the end, unless the text
    already carries it (a template that writes it itself) or the mention is empty."""
    text = text.rstrip()
    mention = mention.strip()
    if not mention or mention.casefold() in text.casefold():
        return text
    return f"{text}\n{mention}"
