"""Recognising what a contacts file is, from its columns: an ESP's audience export
(Mailchimp subscribed, unsubscribed or cleaned; Brevo; Klaviyo), a shop's customers
export (Shopify), a sending service's suppression export (SendGrid, Mailgun, Postmark),
or a plain list. The kind says what the file means about consent, so that consent is
never invented:

- a Mailchimp unsubscribed export (``UNSUB_TIME``) unsubscribes its emails, a cleaned
  one (``CLEAN_TIME``) bounces them, and a suppression export refuses its addresses:
  that status goes where ``--status`` goes (:attr:`FileKind.status`);
- a Mailchimp subscribed export subscribes its emails; a Klaviyo or Shopify export says
  each row's consent in its own columns, and an empty one is no consent;
- only a plain list (no consent column) takes ``import.default_consent`` for its emails;
- a phone number alone is never SMS consent: a file without an SMS consent column gives
  ``sms_status = none`` (Mailchimp's "Phone Number" merge field included).

Each kind may add column names of its own (:attr:`FileKind.aliases`) or drop a generic
one (Mailchimp's ``Birthday`` is ``MM/DD``, no year: it stays a free attribute).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata

from winback.domain import ChannelStatus
from winback.errors import InputFileError

# The column-wise phone rules of the importer (phonenumbers' metadata as Arrow patterns):
# private to the ingest package, shared here rather than written twice.
from winback.ingest.addresses import _TYPES, _Desc, _desc, _matches
from winback.ingest.reader import open_source
from winback.words import fold

_MAILCHIMP_MARKS = ("leid", "euid", "member_rating")


@dataclass(frozen=True)
class FileKind:
    """One kind of contacts file.

    ``marks``: folded column names that must all be there; ``any_marks``: at least one of
    them must be (empty: no such condition). ``status``: the status every email of the
    file has (a whole-file refusal), or None. ``email_default``: the email status of a
    row whose consent columns say nothing (None: the workspace's ``default_consent``).
    ``status_words``: the service's own consent words (folded) and what they mean.
    ``source``: the prefix of the person's id at the service (``source_id`` column).
    ``exact`` and ``name_hint``: see the fields."""

    name: str
    label: str
    marks: tuple[str, ...] = ()
    any_marks: tuple[str, ...] = ()
    status: ChannelStatus | None = None
    email_default: ChannelStatus | None = ChannelStatus.NONE
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dropped: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    status_words: Mapping[str, ChannelStatus] = field(default_factory=dict)
    source: str | None = None
    # For a kind whose few columns a plain list could have: exactly these columns, and a
    # file name with this word in it (the name the service gives its export).
    exact: tuple[str, ...] = ()
    name_hint: str = ""

    def matches(self, folded: set[str]) -> bool:
        """Whether a header whose folded names are ``folded`` is of this kind."""
        return all(fold(mark) in folded for mark in self.marks) and (
            not self.any_marks or any(fold(mark) in folded for mark in self.any_marks)
        )


def _mailchimp(name: str, label: str, mark: str | None, status: ChannelStatus | None) -> FileKind:
    return FileKind(
        name=name,
        label=label,
        marks=(mark,) if mark else (),
        any_marks=_MAILCHIMP_MARKS,
        status=status,
        email_default=ChannelStatus.SUBSCRIBED,
        aliases={"source_id": ("leid",), "consent_at": ("confirm_time",), "country": ("cc",)},
        source="mailchimp",
    )


# Mailgun writes its dates as RFC 2822 ("Fri, 21 Oct 2011 11:02:55 UTC"), and they are
# the suppression's, not the person's: kept as a free attribute.
_MAILGUN_DATES = {"created_at": ("created_at",)}
_MAILGUN_ADDRESS = {"email": ("address",)}

# Most specific first: the first kind whose marks a header has is the file's kind.
KINDS: tuple[FileKind, ...] = (
    _mailchimp(
        "mailchimp-unsubscribed",
        "Mailchimp unsubscribed export",
        "unsub_time",
        ChannelStatus.UNSUBSCRIBED,
    ),
    _mailchimp(
        "mailchimp-cleaned", "Mailchimp cleaned export", "clean_time", ChannelStatus.BOUNCED
    ),
    _mailchimp("mailchimp-subscribed", "Mailchimp subscribed export", None, None),
    FileKind(
        name="brevo",
        label="Brevo contacts export",
        any_marks=("email_blacklisted", "sms_blacklisted"),
        email_default=ChannelStatus.NONE,
        aliases={
            "source_id": ("contact_id", "contact id"),
            "created_at": ("added_time",),
        },
        source="brevo",
    ),
    FileKind(
        name="klaviyo",
        label="Klaviyo profiles export",
        any_marks=("email marketing consent", "sms marketing consent"),
        aliases={
            "email_status": ("email marketing consent",),
            "sms_status": ("sms marketing consent",),
            "consent_at": ("email marketing consent timestamp",),
            "source_id": ("klaviyo id",),
            "created_at": ("profile created on",),
        },
        # Klaviyo's Country is a name ("France"), not a code: a free attribute.
        dropped={"country": ("country",)},
        status_words={
            "neversubscribed": ChannelStatus.NONE,
            "suppressed": ChannelStatus.UNSUBSCRIBED,
        },
        source="klaviyo",
    ),
    FileKind(
        name="shopify-customers",
        label="Shopify customers export",
        any_marks=("accepts email marketing", "accepts sms marketing"),
        aliases={
            "source_id": ("customer id",),
            "country": ("default address country code",),
            "city": ("default address city",),
        },
        source="shopify",
    ),
    FileKind(
        name="postmark-suppressions",
        label="Postmark suppressions export",
        marks=("emailaddress", "suppressionreason"),
        aliases={"email_status": ("suppressionreason",), "created_at": ("createdat",)},
        status_words={
            "hardbounce": ChannelStatus.BOUNCED,
            "spamcomplaint": ChannelStatus.COMPLAINED,
            "manualsuppression": ChannelStatus.UNSUBSCRIBED,
        },
    ),
    FileKind(
        name="mailgun-bounces",
        label="Mailgun bounces export",
        marks=("address", "code", "error"),
        status=ChannelStatus.BOUNCED,
        aliases=_MAILGUN_ADDRESS,
        dropped=_MAILGUN_DATES,
    ),
    FileKind(
        name="mailgun-unsubscribes",
        label="Mailgun unsubscribes export",
        marks=("address", "tags", "created_at"),
        status=ChannelStatus.UNSUBSCRIBED,
        aliases=_MAILGUN_ADDRESS,
        dropped={**_MAILGUN_DATES, "tags": ("tags",)},
    ),
    FileKind(
        name="mailgun-complaints",
        label="Mailgun complaints export",
        marks=("address", "created_at"),
        status=ChannelStatus.COMPLAINED,
        aliases=_MAILGUN_ADDRESS,
        dropped=_MAILGUN_DATES,
        exact=("address", "created_at"),
        name_hint="complaint",
    ),
    FileKind(
        name="sendgrid-spam-reports",
        label="SendGrid spam reports export",
        marks=("created", "email", "ip"),
        status=ChannelStatus.COMPLAINED,
        exact=("created", "email", "ip"),
        name_hint="spam",
    ),
    FileKind(
        name="sendgrid-bounces",
        label="SendGrid bounces export",
        marks=("created", "email", "reason", "status"),
        status=ChannelStatus.BOUNCED,
        dropped={"email_status": ("status",)},
    ),
    FileKind(
        name="sendgrid-unsubscribes",
        label="SendGrid unsubscribes export",
        marks=("created", "email"),
        status=ChannelStatus.UNSUBSCRIBED,
        exact=("created", "email"),
        name_hint="unsub",
    ),
)

PLAIN = FileKind(name="plain", label="contact list", email_default=None)


def recognise(header: Sequence[str], file_name: str = "") -> FileKind:
    """The kind of a contacts file with this header and name (:data:`PLAIN` when none
    fits). A list of emails and creation dates is a plain list unless its name says it is
    a service's unsubscribes (or complaints...) export."""
    folded = {fold(name) for name in header if name.strip()}
    for kind in KINDS:
        if kind.exact and (
            folded != {fold(name) for name in kind.exact} or kind.name_hint not in file_name.lower()
        ):
            continue
        if kind.matches(folded):
            return kind
    return PLAIN


def kind_aliases(base: Mapping[str, tuple[str, ...]], kind: FileKind) -> dict[str, tuple[str, ...]]:
    """The column names to match for a file of ``kind``: the kind's own names first (so
    they win a column another field's generic name would claim), less those it drops."""
    dropped = {field: {fold(name) for name in names} for field, names in kind.dropped.items()}
    merged: dict[str, tuple[str, ...]] = {}
    for field_name, names in kind.aliases.items():
        merged[field_name] = names
    for field_name, names in base.items():
        kept = tuple(name for name in names if fold(name) not in dropped.get(field_name, set()))
        merged[field_name] = merged.get(field_name, ()) + kept
    return merged


# The number types that can get a text. FIXED_LINE_OR_MOBILE is where the numbering plan
# cannot tell (the United States, Canada and a few others): such a number counts as a
# mobile, since its opt-in was given for SMS and refusing it would leave those countries
# without SMS at all; a number known to be a landline (or VoIP, toll-free, premium...)
# never gets SMS consent.
_TEXTABLE = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)


# The number types phonenumbers tests before the fixed line and the mobile, in its order.
_EARLIER_TYPES = tuple(name for name in _TYPES if name != "fixed_line")


@dataclass(frozen=True)
class _Types:
    general: _Desc
    earlier: tuple[_Desc, ...]
    fixed_line: _Desc | None
    mobile: _Desc | None
    same_pattern: bool


@lru_cache(maxsize=256)
def _types(country_code: int) -> _Types | None:
    """The number types of the one region of ``country_code``, or None when the code has
    several regions (the region of a number then depends on its digits)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1:
        return None
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
    general = _desc(metadata.general_desc) if metadata else None
    if metadata is None or general is None:
        return None
    earlier = tuple(t for name in _EARLIER_TYPES if (t := _desc(getattr(metadata, name))))
    return _Types(
        general,
        earlier,
        _desc(metadata.fixed_line),
        _desc(metadata.mobile),
        bool(metadata.same_mobile_and_fixed_line_pattern),
    )


def _matching(numbers: pa.Array, lengths: np.ndarray, desc: _Desc | None) -> np.ndarray:
    if desc is None:
        return np.zeros(len(lengths), bool)
    return _matches(numbers, lengths, desc)


def textable_all(phones: Sequence[str | None]) -> list[bool]:
    """:func:`textable` of many E.164 numbers (False for None), a country code at a time
    with phonenumbers' own patterns run by Arrow over the column: a call of the library
    a number costs more than the rest of a contact's import. Numbers of a
    code shared by several regions (+1, +7...) ask the library one by one."""
    column = pa.array(phones, pa.string())
    found = np.zeros(len(column), bool)
    # Country codes have 1 to 3 digits: the first four characters tell the code.
    heads = pc.dictionary_encode(pc.utf8_slice_codeunits(column, 0, 4))
    codes = np.array(
        [_country_code(head) or 0 for head in heads.dictionary.to_pylist()] + [0], np.int64
    )
    missing = len(codes) - 1
    row_codes = codes[pc.fill_null(heads.indices, missing).to_numpy(zero_copy_only=False)]
    for code in np.unique(row_codes[row_codes > 0]).tolist():
        rows = np.flatnonzero(row_codes == code)
        types = _types(code)
        if types is None:
            found[rows] = [textable(phone) for phone in column.take(rows).to_pylist()]
            continue
        numbers = pc.utf8_slice_codeunits(column.take(rows), len(str(code)) + 1)
        lengths = pc.utf8_length(numbers).to_numpy(zero_copy_only=False)
        known = _matching(numbers, lengths, types.general)
        for desc in types.earlier:
            known &= ~_matching(numbers, lengths, desc)
        mobile = _matching(numbers, lengths, types.mobile)
        fixed = _matching(numbers, lengths, types.fixed_line)
        found[rows] = known & (mobile | (fixed & types.same_pattern))
    return found.tolist()


def _country_code(phone: str) -> int | None:
    """The country code of an E.164 number, or of its first characters (codes are
    prefix-free: one at most fits)."""
    if not phone.startswith("+"):
        return None
    for size in (1, 2, 3):
        code = int(phone[1 : 1 + size]) if phone[1 : 1 + size].isdigit() else 0
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


@lru_cache(maxsize=4096)
def textable(phone: str) -> bool:
    """Whether an E.164 number can take an SMS opt-in (see :data:`_TEXTABLE`).

    >>> textable("+33612345678"), textable("+33145678901")
    (True, False)
    """
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(number) in _TEXTABLE


# The files of a Mailchimp audience export ZIP, in the order they are imported: the
# refusals after the subscriptions (a refusal wins a merge either way).
_ZIP_ORDER = ("subscribed", "unsubscribed", "cleaned")
# A ZIP member larger than this is refused rather than unpacked (a ZIP bomb).
ZIP_MEMBER_LIMIT = 4 * 1024**3


@contextmanager
def unpacked(path: Path) -> Iterator[list[tuple[str, Path]]]:
    """The contacts files of ``path``: itself, or for a ZIP (Mailchimp's audience export
    holds ``subscribed_members_export_<id>.csv``, ``unsubscribed_...`` and ``cleaned_...``)
    each CSV it holds, unpacked to a temporary folder, as (name in the archive, path)."""
    if not zipfile.is_zipfile(path):
        yield [(path.name, path)]
        return
    with zipfile.ZipFile(path) as archive, TemporaryDirectory(prefix="winback-zip-") as folder:
        members = [
            info
            for info in archive.infolist()
            if not info.is_dir() and info.filename.lower().endswith((".csv", ".txt"))
        ]
        if not members:
            names = ", ".join(info.filename for info in archive.infolist()) or "nothing"
            raise InputFileError(f"{path}: the ZIP holds no CSV file (it holds {names})")
        members.sort(key=lambda info: (_zip_rank(info.filename), info.filename))
        found = []
        for number, info in enumerate(members):
            if info.file_size > ZIP_MEMBER_LIMIT:
                raise InputFileError(
                    f"{path}: {info.filename} unpacks to {info.file_size:,} bytes "
                    f"(the limit is {ZIP_MEMBER_LIMIT:,}): unpack it and import the CSV"
                )
            # Only the member's own name, numbered: a name with folders or ".." in it
            # never writes outside the temporary folder.
            target = Path(folder) / f"{number}-{Path(info.filename).name}"
            with archive.open(info) as source, target.open("wb") as sink:
                while chunk := source.read(1 << 20):
                    sink.write(chunk)
            found.append((info.filename, target))
        yield found


def _zip_rank(name: str) -> int:
    base = Path(name).name.lower()
    for rank, prefix in enumerate(_ZIP_ORDER):
        if base.startswith(prefix):
            return rank
    return len(_ZIP_ORDER)


def file_kind(path: Path) -> FileKind:
    """What the contacts file at ``path`` is, from its header."""
    probe = open_source(path)
    try:
        return recognise(probe.header, path.name)
    finally:
        probe.close()
