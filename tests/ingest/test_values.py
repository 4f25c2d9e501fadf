"""The value parsers, on the spellings files really contain."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given
from hypothesis import strategies as st

from winback.addresses import normalise_email, normalise_phone, read_phone
from winback.ingest import values as v

PARIS = ZoneInfo("Europe/Paris")


@given(st.emails())
def test_the_fast_email_path_agrees_with_email_validator(email: str) -> None:
    """The canonical form is email-validator's, lower case, with the domain in IDNA."""
    try:
        valid = validate_email(email, check_deliverability=False)
        expected = f"{valid.local_part}@{valid.ascii_domain}".lower()
    except EmailNotValidError:
        with pytest.raises(ValueError):
            normalise_email(email)
        return
    assert normalise_email(email) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a..b@example.com",
        "a@ex_ample.com",
        "a@example.123",
        "a@localhost",
        "@example.com",
        "a@b",
        "a b@example.com",
    ],
)
def test_invalid_emails(text: str) -> None:
    with pytest.raises(ValueError, match="invalid email"):
        normalise_email(text)


def test_international_email_goes_through_the_full_check() -> None:
    assert normalise_email("Élodie@Exemple.fr") == "élodie@exemple.fr"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01", datetime(2024, 2, 29, 23, 0)),
        ("2024-03-01T10:00:00Z", datetime(2024, 3, 1, 10, 0)),
        ("2024-03-01 10:00:00+02:00", datetime(2024, 3, 1, 8, 0)),
        ("01/03/2024", datetime(2024, 2, 29, 23, 0)),
        ("1/3/2024 10:30", datetime(2024, 3, 1, 9, 30)),
        ("1709287200", datetime(2024, 3, 1, 10, 0)),
        ("1709287200000", datetime(2024, 3, 1, 10, 0)),
    ],
)
def test_dates_in_the_workspace_zone(text: str, expected: datetime) -> None:
    assert v.parse_datetime(text, PARIS) == expected


@pytest.mark.parametrize("text", ["yesterday", "31/02/2024", "2024-13-01", ""])
def test_unparseable_dates(text: str) -> None:
    with pytest.raises(ValueError):
        v.parse_datetime(text, PARIS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12,50", 12.5),
        ("1 234,50 €", 1234.5),
        ("1,234.50", 1234.5),
        ("1.234,50", 1234.5),
        ("€3", 3.0),
        (7, 7.0),
    ],
)
def test_amounts(text: object, expected: float) -> None:
    assert v.parse_amount(text) == expected


@pytest.mark.parametrize("text", ["-5", "abc", "nan", "inf"])
def test_bad_amounts(text: str) -> None:
    with pytest.raises(ValueError):
        v.parse_amount(text)


def test_words_for_types_channels_and_statuses() -> None:
    assert v.parse_event_type("Ouverture") == "open"
    assert v.parse_event_type("hard_bounce") == "bounce_hard"
    assert v.parse_channel("Courriel") == "email"
    assert v.parse_status("cleaned") == "bounced"
    assert normalise_phone("+44 7911 123456", "FR") == "+447911123456"
    with pytest.raises(ValueError, match="unknown event type 'teleport'"):
        v.parse_event_type("teleport")


def test_a_phone_without_its_trunk_prefix_0_is_read_with_a_warning() -> None:
    assert read_phone("612345678", "FR") == (
        "+33612345678",
        "no leading 0 in phone '612345678': read as +33612345678",
    )
    assert read_phone("7911 123456", "GB")[1] is not None
    # Where the trunk prefix is not 0, nobody writes it: no warning.
    assert read_phone("212 555 1234", "US") == ("+12125551234", None)


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("0690 12 34 56", "+590690123456"),  # Guadeloupe, written in France
        ("590690123456", "+590690123456"),  # Guadeloupe, as Brevo exports it
        ("0696 12 34 56", "+596696123456"),  # Martinique
        ("0692 12 34 56", "+262692123456"),  # Réunion
        ("0694 20 12 34", "+594694201234"),  # French Guiana
        ("05 08 41 12 34", "+33508411234"),  # Bordeaux, not Saint-Pierre (+508)
    ],
)
def test_overseas_french_numbers_read_in_their_region(written: str, e164: str) -> None:
    assert read_phone(written, "FR") == (e164, None)


def test_mailchimp_birthday_and_tags() -> None:
    assert v.parse_birthday("03/14", date(2026, 1, 1)) == "--03-14"
    assert v.parse_birthday("1985-05-01", date(2026, 1, 1)) == 1985
    with pytest.raises(ValueError, match="invalid birthday '02/30'"):
        v.parse_birthday("02/30", date(2026, 1, 1))
    assert v.parse_list('"Clients","VIP, Paris"') == ["Clients", "VIP, Paris"]
