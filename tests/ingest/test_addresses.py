"""The column-wise address checks agree with email-validator and phonenumbers on every
value they vouch for, and leave every other non-blank value to them."""

from __future__ import annotations

import numpy as np
import phonenumbers
import pyarrow as pa
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from winback.addresses import normalise_email, normalise_phone
from winback.ingest import addresses

REGIONS = ["FR", "GB", "US", "DE", "BE", "CH", "IT", "ES", "NL", "RU", "BR", "CA", "JE"]


def _checked(
    cells: list[str | None], found: tuple[pa.Array, np.ndarray, np.ndarray]
) -> list[tuple[str, str]]:
    """The (cell, value) pairs vouched for; every cell is absent, vouched for or left."""
    values, absent, left = found
    vouched: list[tuple[str, str]] = []
    for cell, value, is_absent, is_left in zip(
        cells, values.to_pylist(), absent, left, strict=True
    ):
        assert is_absent == (cell is None or not cell.strip())
        assert (value is not None) == (not is_absent and not is_left)
        if value is not None:
            assert cell is not None
            vouched.append((cell, value))
    return vouched


_EMAIL_TEXT = st.text(alphabet="aZ09.-_+@'é!#x ", max_size=30)
_EMAIL_CELLS = st.one_of(
    st.emails(),
    st.emails().map(lambda email: f"  {email.upper()} "),
    _EMAIL_TEXT,
    _EMAIL_TEXT.map(lambda text: f"{text}@example.com"),
    st.sampled_from(["a@b.test", "a@x.LOCALHOST", f"{'a' * 65}@example.com", "", " ", None]),
)


@settings(max_examples=300, deadline=None)
@given(cells=st.lists(_EMAIL_CELLS, min_size=1, max_size=20))
def test_the_email_column_agrees_with_email_validator(cells: list[str | None]) -> None:
    for cell, value in _checked(cells, addresses.emails(pa.array(cells, pa.string()))):
        assert value == normalise_email(cell)
        try:
            expected = validate_email(cell.strip(), check_deliverability=False).normalized
        except EmailNotValidError:
            pytest.fail(f"{cell!r} vouched for, but email-validator refuses it")
        assert value == expected.lower()


def test_plain_emails_are_vouched_for_and_others_left() -> None:
    cells = [" Ann.Lee@Example.COM", "élodie@exemple.fr", "a..b@example.com", "a@x.test", None]
    values, absent, left = addresses.emails(pa.array(cells))
    assert values.to_pylist() == ["ann.lee@example.com", None, None, None, None]
    assert left.tolist() == [False, True, True, True, False]
    assert absent.tolist() == [False, False, False, False, True]


_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=4)
_PHONE_CELLS = st.builds(
    lambda space, prefix, groups, separator: space + prefix + separator.join(groups) + space,
    st.sampled_from(["", " "]),
    st.sampled_from(["", "+", "+33", "+44", "+1", "+49", "+39", "+7", "0", "00", "0033", "33"]),
    st.lists(_DIGITS, min_size=1, max_size=5),
    st.sampled_from(["", " ", ".", "-", "  ", "/"]),
)


def _examples(region: str) -> list[str]:
    """phonenumbers' own example numbers of every type for ``region``, as people write
    them (national, international and E.164)."""
    found = []
    for kind in range(11):
        number = phonenumbers.example_number_for_type(region, kind)
        if number is None:
            continue
        for style in (
            phonenumbers.PhoneNumberFormat.NATIONAL,
            phonenumbers.PhoneNumberFormat.INTERNATIONAL,
            phonenumbers.PhoneNumberFormat.E164,
        ):
            found.append(phonenumbers.format_number(number, style))
    return found


def _agree(cells: list[str], region: str) -> list[tuple[str, str]]:
    vouched = _checked(list(cells), addresses.phones(pa.array(cells, pa.string()), region))
    for cell, value in vouched:
        assert value == normalise_phone(cell, region), (cell, region)
    return vouched


@settings(max_examples=400, deadline=None)
@given(cells=st.lists(_PHONE_CELLS, min_size=1, max_size=20), region=st.sampled_from(REGIONS))
def test_the_phone_column_agrees_with_phonenumbers(cells: list[str], region: str) -> None:
    _agree(cells, region)


@pytest.mark.parametrize("region", REGIONS)
def test_example_numbers_of_every_region(region: str) -> None:
    _agree(_examples(region), region)
    _agree(_examples("FR") + _examples("GB") + _examples("US"), region)


def test_common_french_shapes_are_vouched_for() -> None:
    cells = [
        "06 12 34 56 78",
        "+33 6 12 34 56 78",
        "06.12.34.56.78",
        "+33612345678",
        "01-23-45-67-89",
    ]
    assert [value for _, value in _agree(cells, "FR")] == [
        "+33612345678",
        "+33612345678",
        "+33612345678",
        "+33612345678",
        "+33123456789",
    ]
    values, _, left = addresses.phones(pa.array(["+44 7911 123456", "0639000000", "12"]), "FR")
    assert values.to_pylist() == [None, None, None]
    assert left.tolist() == [True, True, True]
