"""Cutting long lists of ids or addresses into ``IN (...)`` lists both engines accept."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

# Values per IN (...) list: far under SQLite's (32,766) and PostgreSQL's (65,535) limits
# on bound parameters, and large enough that the per-statement cost does not show.
IN_LIST_SIZE = 5000

T = TypeVar("T")


def chunks(values: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    """``values`` in consecutive slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
