"""SMS length and parts, as the operators count them (3GPP TS 23.038 / 23.040)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from winback.channels.sms_encoding import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsLength,
    sms_length,
    split_parts,
    with_stop_mention,
)


def test_gsm7_fits_160_in_one_part_then_153_per_part() -> None:
    assert sms_length("a" * 160) == SmsLength("GSM-7", 160, 1)
    assert sms_length("a" * 161) == SmsLength("GSM-7", 161, 2)
    assert sms_length("a" * 306) == SmsLength("GSM-7", 306, 2)
    assert sms_length("a" * 307) == SmsLength("GSM-7", 307, 3)


def test_extension_characters_count_two_and_are_never_split() -> None:
    assert sms_length("€" * 80) == SmsLength("GSM-7", 160, 1)
    assert sms_length("Prix : 10€ [promo]") == SmsLength("GSM-7", 21, 1)
    # 152 septets, then a euro sign that would straddle the 153 boundary: it moves on.
    parts = split_parts("a" * 152 + "€" + "b" * 10)
    assert parts == ["a" * 152, "€" + "b" * 10]


def test_french_accents_decide_the_encoding() -> None:
    # é è à ù Ç É are in the GSM-7 table; ê, ç, â and the curly apostrophe are not.
    assert sms_length("Déjà vu à Noël ? Non : été, Ça.").encoding == "UCS-2"  # ë
    assert sms_length("Déjà vu à l'été, Ça.").encoding == "GSM-7"
    for outsider in ("ê", "ç", "â", "’", "😀"):
        assert sms_length(f"Bonjour {outsider}").encoding == "UCS-2"


def test_ucs2_fits_70_then_67_and_keeps_emoji_whole() -> None:
    assert sms_length("ê" * 70) == SmsLength("UCS-2", 70, 1)
    assert sms_length("ê" * 71) == SmsLength("UCS-2", 71, 2)
    assert sms_length("ê" * 134) == SmsLength("UCS-2", 134, 2)
    assert sms_length("😀" * 35) == SmsLength("UCS-2", 70, 1)
    # 73 units: two parts; the emoji (a surrogate pair) would straddle unit 67.
    parts = split_parts("ê" * 66 + "😀" + "ê" * 5)
    assert parts == ["ê" * 66, "😀" + "ê" * 5]


def test_an_empty_text_has_no_part() -> None:
    assert sms_length("") == SmsLength("GSM-7", 0, 0)


def test_the_stop_mention_is_added_once() -> None:
    assert with_stop_mention("Promo ce soir ", "STOP au 36111") == "Promo ce soir\nSTOP au 36111"
    assert with_stop_mention("Promo. Stop au 36111", "STOP au 36111") == "Promo. Stop au 36111"
    assert with_stop_mention("Promo", "") == "Promo"


GSM_TEXT = st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=700)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400)


@given(st.one_of(GSM_TEXT, ANY_TEXT))
def test_parts_rebuild_the_text_and_respect_the_part_size(text: str) -> None:
    length = sms_length(text)
    parts = split_parts(text)
    assert "".join(parts) == text
    assert len(parts) == length.parts
    single, multi = (160, 153) if length.encoding == "GSM-7" else (70, 67)
    assert (length.parts <= 1) == (length.units <= single)
    for part in parts:
        assert sms_length(part).units <= (single if len(parts) == 1 else multi)
    # No part could have taken the first character of the next one.
    for part, following in itertools.pairwise(parts):
        assert sms_length(part + following[0]).units > multi or (
            sms_length(part + following[0]).encoding != length.encoding
        )
