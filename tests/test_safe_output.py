"""The three rules of :mod:`winback.safe_output`, on any text."""

from __future__ import annotations

import csv
import io
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from winback.safe_output import csv_writer, shown


@given(st.text())
def test_shown_text_has_no_control_character(text: str) -> None:
    for char in shown(text):
        assert unicodedata.category(char) != "Cc"
        assert char not in "\u061c\u200e\u200f\u2028\u2029\u202a\u202b\u202c\u202d\u202e"


def test_shown_keeps_letters_and_escapes_the_rest() -> None:
    assert shown("Zoë 👩‍👧 [b]") == "Zoë 👩‍👧 [b]"
    assert shown("a\nb\x1b[31mc\u202ed") == "a\\nb\\x1b[31mc\\u202ed"


@given(st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none())))
def test_no_csv_cell_starts_a_formula(row: list[object]) -> None:
    out = io.StringIO(newline="")
    csv_writer(out).writerow(row)
    (cells,) = csv.reader(io.StringIO(out.getvalue(), newline=""))
    for value, cell in zip(row, cells, strict=True):
        if isinstance(value, str):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
            assert cell in (value, "'" + value)
