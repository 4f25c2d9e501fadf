"""From transactions to the (frequency, recency, T, monetary_value) summary the models
take, in NumPy, without sorting the transactions.

As in Fader & Hardie's CDNOW data and in ``lifetimes``, purchases on the same day are one
purchase (their amounts added): frequency is the number of distinct purchase days after
the first, recency the time from the first to the last purchase day, T the time from the
first purchase day to the end of the observation, and monetary_value the average of the
repeat days' totals (0 without a repeat purchase). Transactions after the end of the
observation are left out, and so are customers whose first purchase comes after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from winback.models._data import as_array
from winback.models.errors import ModelInputError

DAYS_PER_UNIT = {"days": 1.0, "weeks": 7.0}


@dataclass(frozen=True)
class Summary:
    """One row per customer, in the order of ``customer`` (sorted ids)."""

    customer: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray


def _day_numbers(name: str, values: Any) -> np.ndarray:
    """The day of each time as a whole number: datetime64 values as days from the Unix
    epoch (the time of day dropped), numbers as given, rounded down."""
    array = np.asarray(values)
    if np.issubdtype(array.dtype, np.datetime64):
        if np.isnat(array).any():
            raise ModelInputError(f"{name}[{int(np.argmax(np.isnat(array)))}] is missing (NaT)")
        return array.astype("datetime64[D]").astype(np.int64)
    return np.asarray(np.floor(as_array(name, array)), np.int64)


def _codes(customer: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each transaction's customer as 0..k−1 and the ids in code order. Integer ids in a
    compact range are coded by offset (no sort); anything else goes through np.unique."""
    ids = np.asarray(customer)
    if ids.ndim != 1 or ids.size != size:
        raise ModelInputError(f"customer: expected {size} ids, one per transaction")
    if np.issubdtype(ids.dtype, np.integer) and size:
        low = int(ids.min())
        span = int(ids.max()) - low + 1
        if span <= 4 * size + 1024:
            offset = (ids - low).astype(np.intp)
            present = np.flatnonzero(np.bincount(offset, minlength=span))
            if present.size == span:  # every id in the range is used: no remapping
                return offset, np.arange(low, low + span).astype(ids.dtype)
            remap = np.empty(span, dtype=np.intp)
            remap[present] = np.arange(present.size)
            return remap[offset], (present + low).astype(ids.dtype)
    unique, inverse = np.unique(ids, return_inverse=True)
    return inverse.ravel(), unique


def summary_from_transactions(
    customer: Any,
    when: Any,
    amount: Any = None,
    *,
    observation_end: Any,
    time_unit: Literal["days", "weeks"] = "weeks",
) -> Summary:
    """The per-customer summary of a transaction log.

    ``customer`` holds the id of each transaction (integers or strings), ``when`` its
    time (datetime64, or a number of days from any origin), ``amount`` its value
    (optional: monetary_value is then 0), ``observation_end`` the end of the calibration
    period in the same kind as ``when``. recency and T come out in ``time_unit``."""
    if time_unit not in DAYS_PER_UNIT:
        raise ModelInputError(f"time_unit {time_unit!r}: use 'days' or 'weeks'")
    day = _day_numbers("when", when)
    end_day = int(_day_numbers("observation_end", np.asarray(observation_end).reshape(1))[0])
    value = np.zeros(day.size) if amount is None else as_array("amount", amount)
    if value.size != day.size:
        raise ModelInputError(f"amount: {value.size} values for {day.size} transactions")
    code, ids = _codes(customer, day.size)
    inside = day <= end_day
    if not inside.all():
        code, day, value = code[inside], day[inside], value[inside]
    if day.size == 0:
        empty = np.zeros(0)
        return Summary(ids[:0], empty, empty, empty, empty)

    first_day = int(day.min())
    # Distinct (customer, day) pairs, sorted by customer then day, as one integer key:
    # the customer in the high bits, the day in the low ones (shifts, not divisions).
    # Sort and drop repeats by hand: np.unique's hash path is far slower on 10^7 keys.
    bits = max(1, (end_day - first_day).bit_length())
    pairs = code.astype(np.int64) << bits
    pairs |= day - first_day
    pairs.sort()
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
    pair_customer = pairs >> bits
    pair_day = (pairs & ((1 << bits) - 1)) + first_day
    counts = np.bincount(pair_customer, minlength=ids.size)
    present = np.flatnonzero(counts)
    days_bought = counts[present]
    ends = np.cumsum(days_bought)
    first = pair_day[ends - days_bought]
    last = pair_day[ends - 1]

    total = np.bincount(code, weights=value, minlength=ids.size)
    # A small (int32) table keeps the per-transaction lookup in the processor's cache.
    first_of = np.zeros(ids.size, dtype=np.int32)
    first_of[present] = first - first_day
    on_first = (day - first_day) == first_of[code]
    on_first_day = np.bincount(code[on_first], weights=value[on_first], minlength=ids.size)
    repeat_total = (total - on_first_day)[present]
    frequency = (days_bought - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        monetary = np.where(frequency > 0, repeat_total / frequency, 0.0)
    unit = DAYS_PER_UNIT[time_unit]
    return Summary(
        customer=ids[present],
        frequency=frequency,
        recency=(last - first) / unit,
        T=(end_day - first) / unit,
        monetary_value=monetary,
    )
