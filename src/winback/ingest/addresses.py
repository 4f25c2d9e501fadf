"""Emails and phone numbers of a whole Arrow column at once, for the addresses of the plain
shapes nearly every file has; the others are left to :func:`winback.addresses.
normalise_email` and :func:`~winback.addresses.normalise_phone` (email-validator and
phonenumbers), which give the reason to reject them or their rarer forms.

Why not call the libraries on every cell: a call of email-validator or phonenumbers per
address costs more than the rest of a contact's import (figures in bench/RESULTS.md).
The checks here are the libraries' own rules,
applied by Arrow's regular expressions to a whole column:

- an email of the plain ASCII dot-atom shape is exactly what ``normalise_email`` accepts
  without asking email-validator (the same pattern, lengths and special-use domains, and
  no IDNA ``xn--`` label, which it checks and writes in its canonical form);
- a phone is read only in the two shapes that leave phonenumbers no choice, for the
  default region: ``+<its country code><number>`` and ``<its national prefix><number>``
  (digits, with single spaces, dots or dashes between groups), and it is valid when the
  national number matches one of the region's number types in phonenumbers' metadata
  (pattern and possible lengths, as ``is_valid_number`` tests them). Where the metadata
  leaves room for another reading (a national prefix that is a pattern, a country code
  shared with regions listed first...) the shape is not vouched for.

Property tests hold the results to the libraries' on every value these functions accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import email_validator
import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers.phonemetadata import PhoneMetadata, PhoneNumberDesc

from winback import addresses as v
from winback.ingest import columnar as col


@lru_cache(maxsize=1)
def _special_use() -> pa.Array:
    # Built on first use: pa.array() imports pandas on its first call, which every
    # winback command would pay at start-up.
    return pa.array(sorted(email_validator.SPECIAL_USE_DOMAIN_NAMES), pa.string())


_LOCAL_PART = rf"^[^@]{{1,{v.LOCAL_PART_LIMIT}}}@"


def emails(column: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Each cell as ``normalise_email`` gives it, null where absent or left to it; which
    cells are absent (null, empty or blank); and which are left to it."""
    if not col.is_text(column):
        present = col.mask(pc.is_valid(column))
        return pa.nulls(len(column), pa.string()), ~present, present
    text, absent = col.trimmed(column)
    plain = (
        col.mask(pc.match_substring_regex(text, v.PLAIN_EMAIL))
        & col.mask(pc.less_equal(pc.utf8_length(text), v.EMAIL_LIMIT))
        & col.mask(pc.match_substring_regex(text, _LOCAL_PART))
    )
    top = pc.ascii_lower(pc.replace_substring_regex(text, r"^.*\.", ""))
    plain &= ~col.mask(pc.is_in(top, value_set=_special_use()))
    plain &= ~col.mask(pc.match_substring(text, "xn--", ignore_case=True))
    normalised = pc.if_else(pa.array(plain), pc.ascii_lower(text), pa.scalar(None, pa.string()))
    return normalised, absent, ~absent & ~plain


# Digits in groups separated by one space, dot or dash, after an optional plus sign.
_PHONE_SHAPE = r"^\+?[0-9]+(?:[ .\-][0-9]+)*$"
_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
)


@dataclass(frozen=True)
class _Desc:
    pattern: str
    lengths: tuple[int, ...]


@dataclass(frozen=True)
class _PhoneRules:
    """What phonenumbers' metadata says about the numbers of one region."""

    country_code: str
    # The national prefix when a national number is read by stripping exactly it.
    national_prefix: str | None
    # Numbers (after the country code) that phonenumbers would strip a prefix from.
    strippable: str | None
    international_prefix: str | None
    general: _Desc
    types: tuple[_Desc, ...]
    local_only_lengths: tuple[int, ...]


def _desc(desc: PhoneNumberDesc | None) -> _Desc | None:
    if desc is None or not desc.national_number_pattern:
        return None
    return _Desc(f"^(?:{desc.national_number_pattern})$", tuple(desc.possible_length or ()))


@lru_cache(maxsize=16)
def _rules(region: str) -> _PhoneRules | None:
    """The rules of ``region``, or None when its numbers are not read here: a region
    that is not the first listed for its country code, or that has leading digits (the
    region of a number would then depend on other regions' metadata)."""
    metadata = PhoneMetadata.metadata_for_region(region.upper(), None)
    if metadata is None or metadata.leading_digits is not None or metadata.country_code is None:
        return None
    code = metadata.country_code
    if phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(code, ())[:1] != (region.upper(),):
        return None
    general = _desc(metadata.general_desc)
    if general is None or metadata.general_desc is None:
        return None
    names = _TYPES if metadata.same_mobile_and_fixed_line_pattern else (*_TYPES, "mobile")
    types = tuple(d for name in names if (d := _desc(getattr(metadata, name))) is not None)
    prefix = metadata.national_prefix
    national = (
        prefix
        if prefix
        and prefix.isdigit()
        and metadata.national_prefix_for_parsing == prefix
        and not metadata.national_prefix_transform_rule
        and not str(code).startswith(prefix)
        else None
    )
    return _PhoneRules(
        country_code=str(code),
        national_prefix=national,
        strippable=metadata.national_prefix_for_parsing or None,
        international_prefix=metadata.international_prefix or None,
        general=general,
        types=types,
        local_only_lengths=tuple(metadata.general_desc.possible_length_local_only or ()),
    )


def _matches(numbers: pa.Array, lengths: np.ndarray, desc: _Desc) -> np.ndarray:
    fits = np.isin(lengths, desc.lengths) if desc.lengths else np.ones(len(lengths), bool)
    return np.asarray(fits & col.mask(pc.match_substring_regex(numbers, desc.pattern)))


def phones(column: pa.Array, region: str) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """Each cell in E.164 as ``normalise_phone`` gives it, null where absent or left to
    it; which cells are absent (null, empty or blank); and which are left to it."""
    rows = len(column)
    if not col.is_text(column):
        present = col.mask(pc.is_valid(column))
        return pa.nulls(rows, pa.string()), ~present, present
    text, absent = col.trimmed(column)
    rules = _rules(region)
    if rules is None:
        return pa.nulls(rows, pa.string()), absent, ~absent
    shaped = col.mask(pc.match_substring_regex(text, _PHONE_SHAPE))
    digits = pc.replace_substring_regex(text, r"[ .\-]", "")
    international = shaped & col.mask(pc.starts_with(digits, f"+{rules.country_code}"))
    numbers = pc.utf8_slice_codeunits(digits, len(rules.country_code) + 1)
    if rules.strippable:
        international &= ~col.mask(pc.match_substring_regex(numbers, f"^(?:{rules.strippable})"))
    if rules.national_prefix:
        national = (
            shaped
            & col.mask(pc.starts_with(digits, rules.national_prefix))
            & ~col.mask(pc.starts_with(digits, rules.country_code))
        )
        if rules.international_prefix:
            idd = f"^(?:{rules.international_prefix})"
            national &= ~col.mask(pc.match_substring_regex(digits, idd))
        from_national = pc.utf8_slice_codeunits(digits, len(rules.national_prefix))
        numbers = pc.if_else(pa.array(national), from_national, numbers)
        international |= national
    numbers = pc.if_else(pa.array(international), numbers, pa.scalar(None, pa.string()))
    lengths = pc.fill_null(pc.utf8_length(numbers), 0).to_numpy(zero_copy_only=False)
    valid = (
        international
        & col.mask(pc.match_substring_regex(numbers, r"^[1-9]"))
        & ~np.isin(lengths, rules.local_only_lengths)
        & _matches(numbers, lengths, rules.general)
    )
    typed = np.zeros(rows, bool)
    for desc in rules.types:
        typed |= _matches(numbers, lengths, desc)
    valid &= typed
    kept = pc.if_else(pa.array(valid), numbers, pa.scalar(None, pa.string()))
    e164 = pc.binary_join_element_wise(pa.scalar(f"+{rules.country_code}"), kept, "")
    return e164, absent, ~absent & ~valid
