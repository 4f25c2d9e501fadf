"""Checking the customer arrays a model is given, and condensing them into purchase
patterns: the distinct (frequency, recency, T) triples with the number of customers that
share each. Fader and Hardie fit on these patterns; a base of daily data has far fewer
patterns than customers, so the likelihood is evaluated once per pattern."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from winback.models.errors import ModelInputError

# Odd 64-bit constants for the pattern hash (from splitmix64 / xxhash); any odd numbers do.
_MIX = (
    np.uint64(0x9E3779B97F4A7C15),
    np.uint64(0xC2B2AE3D27D4EB4F),
    np.uint64(0x165667B19E3779F9),
)


# Rows drawn to judge whether merging identical patterns is worth its cost.
PROBE_ROWS = 20_000
# Checks run on slices of this many values, so that their temporaries stay small: a
# fresh array of a million values costs more in page faults than the comparison.
CHECK_ROWS = 65_536


def dot(a: np.ndarray, b: np.ndarray) -> float:
    """Inner product without BLAS: on a busy machine a multi-threaded BLAS dot of a
    million terms can take 30 times longer than this single pass."""
    return float(np.einsum("i,i->", a, b))


def as_array(name: str, values: Any) -> np.ndarray:
    """A one-dimensional float64 array of finite numbers, from anything array-like
    (NumPy, pandas or Polars columns, lists). Raises naming the argument and the first bad
    position."""
    array = _as_vector(name, values)
    if not np.isfinite(array).all():
        index = _first(~np.isfinite(array))
        raise ModelInputError(
            f"{name}[{index}] is {array[index]}: every value must be a finite number "
            "(fill or drop missing customers before fitting)"
        )
    return array


def _as_vector(name: str, values: Any) -> np.ndarray:
    """``as_array`` without the check that every value is finite."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ModelInputError(f"{name}: not an array of numbers ({exc})") from None
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise ModelInputError(f"{name}: expected a one-dimensional array, got shape {array.shape}")
    return array


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _holds(test: Callable[..., np.ndarray], *arrays: np.ndarray) -> bool:
    """Whether ``test`` (elementwise, on slices of the arrays) holds everywhere."""
    return all(
        bool(test(*(a[start : start + CHECK_ROWS] for a in arrays)).all())
        for start in range(0, arrays[0].size, CHECK_ROWS)
    )


def _whole(a: np.ndarray) -> np.ndarray:
    return np.asarray((a >= 0) & (np.floor(a) == a))


def _valid(x: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Every check of ``as_rfm`` at once (0 <= t <= T finite makes t finite)."""
    finite = np.isfinite(x) & np.isfinite(T)
    return np.asarray(finite & _whole(x) & (t >= 0) & (t <= T) & ((x > 0) | (t == 0)))


def as_counts(name: str, values: Any) -> np.ndarray:
    """``as_array`` for counts of purchases: whole numbers >= 0."""
    array = as_array(name, values)
    if not _holds(_whole, array):
        i = _first(~_whole(array))
        raise ModelInputError(f"{name}[{i}] = {array[i]}: must be a whole number >= 0")
    return array


def as_rfm(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a (frequency, recency, T) summary: frequency the number of repeat purchases
    (a whole number), recency the time of the last purchase after the first, T the time
    from the first purchase to the end of the observation, all in one time unit."""
    x = _as_vector("frequency", frequency)
    t = _as_vector("recency", recency)
    age = _as_vector("T", T)
    if not x.size == t.size == age.size:
        raise ModelInputError(
            f"frequency, recency and T must have one value per customer; "
            f"got lengths {x.size}, {t.size} and {age.size}"
        )
    # One pass over slices when all is well; the checks one at a time to name a fault.
    if _holds(_valid, x, t, age):
        return x, t, age
    as_counts("frequency", x)
    as_array("recency", t)
    as_array("T", age)
    checks = (
        (t < 0, "recency[{i}] = {t}: must be >= 0"),
        (
            t > age,
            "recency[{i}] = {t} is after T[{i}] = {T}: the last purchase cannot come after "
            "the end of the observation (are both in the same time unit?)",
        ),
        (
            (x == 0) & (t != 0),
            "recency[{i}] = {t} with frequency[{i}] = 0: a customer with no repeat purchase "
            "has recency 0",
        ),
    )
    for mask, message in checks:
        if mask.any():
            i = _first(mask)
            raise ModelInputError(message.format(i=i, x=x[i], t=t[i], T=age[i]))
    return x, t, age


def as_weights(weights: Any, size: int) -> np.ndarray:
    """Customer counts per row (all ones when not given: a read-only view of a single
    one, which costs no memory); non-negative, one per row."""
    if weights is None:
        return np.broadcast_to(np.float64(1.0), (size,))
    w = as_array("weights", weights)
    if w.size != size:
        raise ModelInputError(f"weights: {w.size} values for {size} customers")
    if (w < 0).any():
        i = _first(w < 0)
        raise ModelInputError(f"weights[{i}] = {w[i]}: a count of customers must be >= 0")
    return w


@dataclass(frozen=True)
class Patterns:
    """Distinct purchase patterns (x, t_x, T) and the weight (customer count) of each."""

    x: np.ndarray
    t: np.ndarray
    T: np.ndarray
    weight: np.ndarray

    @cached_property
    def customers(self) -> float:
        """The number of customers (a sum over every row, asked for by several steps of
        a fit: kept)."""
        return float(self.weight.sum())

    @property
    def rows(self) -> int:
        return int(self.x.size)

    def rescaled(self, factor: float) -> Patterns:
        """The same patterns with times multiplied by ``factor`` (for a well-scaled fit)."""
        if factor == 1.0:
            return self
        return Patterns(self.x, self.t * factor, self.T * factor, self.weight)

    def samples(self, sizes: list[int], seed: int = 0) -> list[Patterns]:
        """For each size, a sample of about that many customers whose weights keep
        weighted sums unbiased; rows keep their order. A row of weight w is kept with
        probability p w (p = size / customers; always when p w >= 1) and then stands for
        max(w, 1/p) customers. The trailing rows of equal weight (the repeat buyers of a
        base with continuous times: nearly every row) are taken systematically, every
        1/(p w)-th from a random start, without a random draw per row; the rows before
        them each by its own draw. Used to find a starting point cheaply before the fit
        on every pattern."""
        rng = np.random.default_rng(seed)
        w = self.weight
        differ = np.flatnonzero(w != w[-1])
        tail = int(differ[-1]) + 1 if differ.size else 0
        with np.errstate(divide="ignore", invalid="ignore"):
            draw = rng.random(tail) / w[:tail]
        result = []
        for size in sizes:
            p = size / self.customers
            step = max(1.0, 1.0 / (p * w[-1]))
            start = rng.random() * step
            count = max(0, int(np.ceil((self.rows - tail - start) / step)))
            spaced = tail + (start + step * np.arange(count)).astype(np.intp)
            rows = np.concatenate([np.flatnonzero(draw < p), spaced])
            weight = np.maximum(w[rows], 1.0 / p)
            result.append(Patterns(self.x[rows], self.t[rows], self.T[rows], weight))
        return result


def _hash(x: np.ndarray, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    return np.asarray(
        (x.astype(np.uint64) * _MIX[0])
        ^ (np.ascontiguousarray(t).view(np.uint64) * _MIX[1])
        ^ (np.ascontiguousarray(T).view(np.uint64) * _MIX[2])
    )


def group(x: np.ndarray, t: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indexes of the distinct (x, t, T) rows (``first``) and, for every row, the
    position of its group (``inverse``). Rows are grouped by a 64-bit hash, then checked
    equal to their group's first row, so a collision falls back to an exact sort."""
    key = _hash(x, t, T)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    same = (x == x[first][inverse]) & (t == t[first][inverse]) & (T[first][inverse] == T)
    if not same.all():
        rows = np.stack([x, t, T], axis=1)
        _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
    return first, inverse


def _few_repeats(
    x: np.ndarray, t: np.ndarray, T: np.ndarray, among: np.ndarray | None = None
) -> bool:
    """Whether merging identical rows (those at the positions ``among``, or all) would
    hardly shrink a large set of rows, judged on a random sample: if rows repeated on
    average 1.5 times or more, a sample of ``k`` of ``n`` rows would hold about
    k²/(4n) identical pairs or more."""
    n = x.size if among is None else among.size
    if n <= 4 * PROBE_ROWS:
        return False
    # Distinct positions by sorting (np.unique hashes, and is slower on these sizes).
    rows = np.sort(np.random.default_rng(0).integers(0, n, PROBE_ROWS))
    rows = rows[np.concatenate(([True], rows[1:] != rows[:-1]))]
    if among is not None:
        rows = among[rows]
    keys = np.sort(_hash(x[rows], t[rows], T[rows]))
    pairs = int((keys[1:] == keys[:-1]).sum())
    return pairs < rows.size**2 / (4 * n)


def _condense(
    x: np.ndarray, t: np.ndarray, T: np.ndarray, w: np.ndarray, *, check: bool = True
) -> Patterns:
    """Merge identical rows. When rows hardly repeat (continuous times) nothing is merged
    and no costly grouping runs: the fit is the same, row by row. ``check=False`` when
    the caller has already judged it worth trying."""
    if x.size == 0 or (check and _few_repeats(x, t, T)):
        return Patterns(x, t, T, w)
    ordered = np.sort(_hash(x, t, T))
    if not (ordered[1:] == ordered[:-1]).any():
        return Patterns(x, t, T, w)
    first, inverse = group(x, t, T)
    weight = np.bincount(inverse, weights=w, minlength=first.size)
    return Patterns(x[first], t[first], T[first], weight)


def condense(
    x: np.ndarray, t: np.ndarray, T: np.ndarray, w: np.ndarray, scale: float = 1.0
) -> Patterns:
    """The distinct (x, t_x, T) patterns with their summed weights, zero-weight rows
    dropped, customers with no repeat purchase first, times multiplied by ``scale`` (in
    place when the rows are copied anyway). One-time buyers differ only by T, so they
    are grouped by T alone (cheap); repeat buyers are merged only when some of them
    share a pattern."""
    zero = x == 0
    if zero.all() or not zero.any():
        merged = _condense(x, t, T, w).rescaled(scale)
    else:
        # (np.compress is several times faster than indexing with a mask.)
        zero_T = np.compress(zero, T)
        ordered = np.sort(zero_T)
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        ages = ordered[starts]
        uniform = bool((w == w[0]).all())
        if uniform:
            counts = np.diff(np.append(starts, ordered.size)) * w[0]
        else:
            counts = np.bincount(np.searchsorted(ages, zero_T), weights=np.compress(zero, w))
        repeat = np.flatnonzero(~zero)
        if _few_repeats(x, t, T, among=repeat):
            # Nothing to merge: copy the repeat rows straight after the grouped ones
            # (np.take into place; the positions are valid, so "clip" skips the check).
            size = ages.size + repeat.size
            columns = []
            for head, values in ((0.0, x), (0.0, t), (ages, T), (counts, w)):
                column = np.empty(size)
                column[: ages.size] = head
                if values is w and uniform:
                    column[ages.size :] = w[0]
                else:
                    np.take(values, repeat, out=column[ages.size :], mode="clip")
                columns.append(column)
            columns[1] *= scale
            columns[2] *= scale
            merged = Patterns(*columns)
        else:
            rest = _condense(x[repeat], t[repeat], T[repeat], w[repeat], check=False)
            rest = rest.rescaled(scale)
            ages = ages * scale
            none = np.zeros(ages.size)
            merged = Patterns(
                *(
                    np.concatenate([head, getattr(rest, f)])
                    for head, f in ((none, "x"), (none, "t"), (ages, "T"), (counts, "weight"))
                )
            )
    keep = merged.weight > 0
    if keep.all():
        return merged
    return Patterns(merged.x[keep], merged.t[keep], merged.T[keep], merged.weight[keep])
