"""Looking up stored contacts by email or phone a column at a time finds what a
dictionary of the same keys finds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from winback.ingest.keys import SortedKeys

ADDRESSES = ["ann@example.com", "bob@example.com", "élodie@exemple.fr", "+33612345678", "", "z"]


def test_known_unknown_null_and_empty_keys() -> None:
    keys = SortedKeys(
        pa.array(["bob@example.com", None, "ann@example.com", ""]), np.array([7, 8, 9, 10])
    )
    assert len(keys) == 2
    found = keys.lookup(pa.array(["ann@example.com", "zed@example.com", None, "", "a"]))
    assert found.tolist() == [9, -1, -1, -1, -1]
    assert keys.lookup(pa.array(["bob@example.com"], pa.large_string())).tolist() == [7]
    assert keys.get("bob@example.com") == 7
    assert keys.get("BOB@example.com") is None


def test_no_contacts_find_nothing() -> None:
    keys = SortedKeys(pa.array([], pa.string()), np.array([], np.int64))
    assert keys.lookup(pa.array(["ann@example.com", None])).tolist() == [-1, -1]
    assert keys.get("ann@example.com") is None


@given(
    stored=st.dictionaries(st.sampled_from(ADDRESSES) | st.text(), st.integers(1, 10**9)),
    wanted=st.lists(st.sampled_from(ADDRESSES) | st.text() | st.none()),
)
def test_a_column_finds_what_a_dictionary_finds(
    stored: dict[str, int], wanted: list[str | None]
) -> None:
    keys = SortedKeys(pa.array(list(stored), pa.string()), np.array(list(stored.values())))
    expected = [stored.get(key, -1) if key else -1 for key in wanted]
    assert keys.lookup(pa.array(wanted, pa.string())).tolist() == expected
    present = [key for key in wanted if key is not None]
    assert [keys.get(key) for key in present] == [
        stored.get(key) if key else None for key in present
    ]
