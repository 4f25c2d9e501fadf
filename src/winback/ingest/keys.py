"""The stored contacts' ids by email and by phone, for the events importer, which resolves
millions of rows against them a block at a time.

A hand-written structure rather than two ``dict``: the keys are kept as one sorted Arrow
string array and the ids as one NumPy array, and a whole column is looked up by binary
search (``pyarrow.compute.search_sorted``), then checked for equality. The two dicts held
Python strings and integers for the whole import, several times what these arrays hold
(see bench/RESULTS.md). A column is looked up at about the same cost
(the dicts needed the column as Python strings first), and ``pyarrow.compute.index_in``
would hash the million keys again for every block.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection

from winback.store import contacts as store


class SortedKeys:
    """Ids by text key. Null and empty keys are left out: nothing finds them."""

    def __init__(self, keys: pa.Array, ids: np.ndarray) -> None:
        present = pc.fill_null(pc.greater(pc.binary_length(keys), 0), False)
        keys, ids = keys.filter(present), ids[present.to_numpy(zero_copy_only=False)]
        order = pc.sort_indices(keys)
        self.keys: pa.Array = keys.take(order)
        self.ids: np.ndarray = ids[order.to_numpy()]

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: pa.Array) -> np.ndarray:
        """The id of each of ``keys`` (a text column), -1 where it is unknown or null."""
        if not len(self.keys) or not len(keys):
            return np.full(len(keys), -1, np.int64)
        keys = keys.cast(self.keys.type)
        at = pc.fill_null(pc.search_sorted(self.keys, keys), 0).to_numpy()
        at = np.minimum(at, len(self.keys) - 1)
        found = pc.fill_null(pc.equal(self.keys.take(at), keys), False)
        return np.where(found.to_numpy(zero_copy_only=False), self.ids[at], -1)

    def get(self, key: str) -> int | None:
        """The id of one key, None when it is unknown (the row path: one search of a
        scalar, much cheaper than looking up a column of one key)."""
        at = pc.search_sorted(self.keys, pa.scalar(key, self.keys.type)).as_py()
        if at < len(self.keys) and self.keys[at].as_py() == key:
            return int(self.ids[at])
        return None


def contact_keys(connection: Connection) -> tuple[SortedKeys, SortedKeys]:
    """Every stored contact's id by email and by phone."""
    ids, emails, phones = [], [], []
    for part in store.contact_keys(connection):
        ids.append(pa.array(part[0], pa.int64()))
        emails.append(pa.array(part[1], pa.string()))
        phones.append(pa.array(part[2], pa.string()))
    id_column = _joined(ids, pa.int64()).to_numpy()
    return (
        SortedKeys(_joined(emails, pa.string()), id_column),
        SortedKeys(_joined(phones, pa.string()), id_column),
    )


def _joined(parts: Iterable[pa.Array], kind: pa.DataType) -> pa.Array:
    return pa.chunked_array(list(parts), kind).combine_chunks()
