"""An address's one canonical form, the rule every path compares addresses by: import,
webhooks, tracking, suppression, hashing and sending.

- an email is trimmed, syntax-checked (email-validator, no DNS), lower-cased as a whole
  (mailbox providers treat the local part case-insensitively, and de-duplication must
  too), and its domain is written in ASCII, as IDNA (punycode) labels:
  ``User@Bücher.com`` and ``user@xn--bcher-kva.com`` are both ``user@xn--bcher-kva.com``.
  The ASCII domain is the form every mail server accepts (no SMTPUTF8 needed for the
  domain) and the form nearly every address already has, so the fast path below keeps it
  untouched;
- a phone is E.164 (``+33612345678``), read in the workspace's region when it has no
  ``+country`` prefix.

The suppression list keys an address by a keyed hash of :func:`hashed_form`. Before this
form, an email whose domain was typed in Unicode was stored and hashed with its Unicode
domain (a punycode one with its punycode domain), and a hash cannot be re-hashed: so
:func:`hashed_forms` also gives the Unicode spelling of an IDNA domain, and every lookup
of the list checks both. Only addresses with an ``xn--`` label pay for the second hash.

This module has no I/O and imports nothing of winback: ``ingest``, ``compliance``,
``journeys`` and ``web`` all call it.
"""

from __future__ import annotations

import re
from functools import lru_cache

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers.phonemetadata import PhoneMetadata

# The plain shape nearly every real address has: an ASCII dot-atom, then ASCII labels
# with an alphabetic top-level domain. email-validator accepts every address of this
# shape (a property test checks it), so these skip its full RFC 5322/6531 parse, which
# costs more than the rest of a contact row together. Anything else goes through it.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
PLAIN_EMAIL = rf"^{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+[A-Za-z]{{2,63}}$"
_PLAIN_EMAIL = re.compile(PLAIN_EMAIL)
# The longest address and local part email-validator accepts (RFC 5321).
EMAIL_LIMIT = 254
LOCAL_PART_LIMIT = 64
_SPECIAL_USE = frozenset(email_validator.SPECIAL_USE_DOMAIN_NAMES)
# The prefix of an IDNA label (RFC 3490), in the lower case of a canonical address.
_IDNA = "xn--"


@lru_cache(maxsize=65_536)
def normalise_email(text: str) -> str:
    """An email in its canonical form (see the module), or ``ValueError`` with the reason.

    >>> normalise_email("  Alice.Martin@Example.COM ")
    'alice.martin@example.com'
    >>> normalise_email("Jo@BÜCHER.example"), normalise_email("jo@xn--bcher-kva.example")
    ('jo@xn--bcher-kva.example', 'jo@xn--bcher-kva.example')
    """
    candidate = text.strip()
    if not candidate:
        raise ValueError("empty email")
    if (
        len(candidate) <= EMAIL_LIMIT
        and _PLAIN_EMAIL.match(candidate)
        and len(candidate.partition("@")[0]) <= LOCAL_PART_LIMIT
        and candidate.rpartition(".")[2].lower() not in _SPECIAL_USE
        and _IDNA not in candidate.lower()
    ):
        return candidate.lower()
    try:
        checked = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"invalid email {candidate!r}: {exc}") from None
    return f"{checked.local_part}@{checked.ascii_domain}".lower()


def normalise_phone(text: str, region: str) -> str:
    """A phone number in E.164, read in ``region`` when it has no ``+country`` prefix.

    >>> normalise_phone("06 12 34 56 78", "FR")
    '+33612345678'
    """
    return read_phone(text, region)[0]


# Regions whose numbers a file of another region writes as national numbers: the French
# overseas departments share France's trunk prefix 0 and ten digits, so a French file
# writes a Guadeloupe mobile 0690 12 34 56 (+590 690 12 34 56), which is no number of
# metropolitan France.
NATIONAL_NEIGHBOURS: dict[str, tuple[str, ...]] = {
    "FR": ("GP", "MQ", "GF", "RE", "YT", "PM", "BL", "MF"),
}


def read_phone(text: str, region: str) -> tuple[str, str | None]:
    """A phone number in E.164 and a warning when it was read by a guess: a national
    number written without its trunk prefix (a French ``612345678``). A number that is
    not valid in ``region`` is tried in the regions it dials as national numbers
    (:data:`NATIONAL_NEIGHBOURS`). Raises ``ValueError`` when no reading is valid.

    >>> read_phone("0690 12 34 56", "FR")
    ('+590690123456', None)
    >>> read_phone("612345678", "FR")[1]
    "no leading 0 in phone '612345678': read as +33612345678"
    """
    candidate = text.strip()
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"invalid phone {candidate!r}: {exc}") from None
    place = region
    if not phonenumbers.is_valid_number(number):
        found = None if candidate.startswith(("+", "00")) else _in_neighbours(number, region)
        if found is None:
            raise ValueError(f"invalid phone {candidate!r}: not a valid number in {region}")
        number, place = found
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164, _without_trunk_prefix(candidate, number, place, e164)


@lru_cache(maxsize=16)
def _neighbours(region: str) -> tuple[tuple[str, int, re.Pattern[str], frozenset[int]], ...]:
    """Each region ``region`` dials nationally, with its country code and the pattern
    and lengths of all its numbers (phonenumbers' general description): a cheap test
    before phonenumbers' own, which is costly when asked of every region."""
    found = []
    for place in NATIONAL_NEIGHBOURS.get(region, ()):
        metadata = PhoneMetadata.metadata_for_region(place, None)
        if metadata is None or metadata.general_desc is None:
            continue
        general = metadata.general_desc
        pattern = re.compile(f"(?:{general.national_number_pattern})")
        code = phonenumbers.country_code_for_region(place)
        found.append((place, code, pattern, frozenset(general.possible_length or ())))
    return tuple(found)


def _in_neighbours(
    number: phonenumbers.PhoneNumber, region: str
) -> tuple[phonenumbers.PhoneNumber, str] | None:
    """The national number of ``number`` (read in ``region``) as a valid number of one of
    the regions it dials nationally, with or without their country code before it (Brevo
    writes a Guadeloupe mobile 590690123456); None when it is none."""
    national = str(number.national_number)
    for place, code, pattern, lengths in _neighbours(region.upper()):
        prefix = str(code)
        readings = [national]
        if national.startswith(prefix) and len(national) > len(prefix):
            readings.append(national[len(prefix) :])
        for digits in readings:
            if len(digits) not in lengths or not pattern.fullmatch(digits):
                continue
            found = phonenumbers.PhoneNumber(country_code=code, national_number=int(digits))
            if phonenumbers.is_valid_number_for_region(found, place):
                return found, place
    return None


def _without_trunk_prefix(
    candidate: str, number: phonenumbers.PhoneNumber, region: str, e164: str
) -> str | None:
    """The warning for a national number written without its trunk prefix 0, if it was:
    where the prefix is 0 (most of Europe) people write it, so its absence is a sign of
    a number mangled on the way (a spreadsheet read it as a number). Where it is another
    digit (1 in North America) nobody writes it."""
    if candidate.startswith(("0", "+")):
        return None
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or metadata.national_prefix != "0":
        return None
    digits = re.sub(r"[\s.()-]", "", candidate)
    if digits.isdigit() and digits == str(number.national_number):
        return f"no leading 0 in phone {candidate!r}: read as {e164}"
    return None


def channel_of(address: str) -> str:
    """The sending channel of a canonical address: ``email`` or ``sms``."""
    return "email" if "@" in address else "sms"


def normalise_address(address: str, region: str) -> str:
    """An email or a phone in its canonical form (a text with ``@`` is an email)."""
    if "@" in address:
        return normalise_email(address)
    return normalise_phone(address, region)


def hashed_form(channel: str, address: str) -> str:
    """The form an address is hashed in for the suppression list: the canonical form of
    a canonical address (lower case, spaces gone, as a last guard for callers that pass
    a stored one)."""
    if channel == "email":
        return address.strip().lower()
    return "".join(address.split())


def hashed_forms(channel: str, address: str) -> tuple[str, ...]:
    """:func:`hashed_form`, then the spelling older entries of the list may have been
    hashed in: the Unicode domain of an email whose domain has IDNA labels."""
    canonical = hashed_form(channel, address)
    if channel != "email" or _IDNA not in canonical:
        return (canonical,)
    return (canonical, *_unicode_spelling(canonical))


@lru_cache(maxsize=4_096)
def _unicode_spelling(address: str) -> tuple[str, ...]:
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return ()
    unicode = f"{checked.local_part}@{checked.domain}".lower()
    return () if unicode == address else (unicode,)
