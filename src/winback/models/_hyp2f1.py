"""The Gaussian hypergeometric function the Pareto/NBD likelihood needs, with its
derivatives, vectorised and stable.

The Pareto/NBD terms are 2F1(m, b; m+1; z) with 0 <= z < 1. Euler's transformation turns
each into (1 − z)^(1−b) · S(q, c, z) with

    S(q, c, z) = 2F1(1, q; c; z) = Σ_k (q)_k / (c)_k · z^k,   0 < q < c,

a series of positive terms whose ratio (q+k)/(c+k)·z stays below z: no cancellation,
and the derivatives in q, c and z follow term by term. Below ``SERIES_UP_TO`` the series
is summed (rows leave the loop as soon as their tail is below rounding); above it, where
the series would need thousands of terms, Euler's integral

    S = (c − 1) ∫₀¹ (1 − u)^(c−2) (1 − z u)^(−q) du

is taken by double-exponential (tanh-sinh) quadrature, which copes with the endpoint
behaviour at u = 1, and its derivatives by differentiating under the integral on the same
nodes. Both paths are checked against mpmath in the tests.
"""

from __future__ import annotations

import numpy as np

SERIES_UP_TO = 0.8
_TOLERANCE = 1e-17

# tanh-sinh nodes on (0, 1): u = (1 + tanh(π/2 sinh s)) / 2, with ln(1 − u) and the
# weights kept in log space: the nodes reach 1 − u ≈ e^-700, so the integrable
# singularity (1 − u)^(c−2) is resolved for c down to QUADRATURE_FROM_C, and so is the
# layer at u → 1 when z is close to 1.
_STEP = 1.0 / 32
_S = np.arange(-4.0, 6.5, _STEP)
_E = np.pi * np.sinh(_S)
_LOG_ONE_MINUS_U = -np.logaddexp(0.0, _E)
_ONE_MINUS_U = np.exp(_LOG_ONE_MINUS_U)
_U = 1.0 / (1.0 + np.exp(-_E))
_LOG_W = np.log(_STEP * np.pi * np.cosh(_S) * _U) + _LOG_ONE_MINUS_U
QUADRATURE_FROM_C = 1.05


def log_unit_2f1_value(q: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """ln S(q, c, z) alone (for predictions: a third of the work of the derivatives)."""
    q, c, z = np.broadcast_arrays(
        np.asarray(q, np.float64), np.asarray(c, np.float64), np.asarray(z, np.float64)
    )
    value = np.empty(q.shape)
    near = (z > SERIES_UP_TO) & (c >= QUADRATURE_FROM_C)
    if (~near).any():
        value[~near] = _series_value(q[~near], c[~near], z[~near])
    if near.any():
        value[near] = _quadrature(q[near], c[near], z[near])[0]
    return value


def _series_value(q: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The series of ``_series`` without the derivatives."""
    size = q.size
    total = np.empty(size)
    rows = np.arange(size)
    term, s = np.ones(size), np.ones(size)
    qk, ck, za, work = q.copy(), c.copy(), z.copy(), np.empty(size)
    k = 0
    while rows.size:
        np.divide(qk, ck, out=work)
        np.multiply(work, za, out=work)
        np.multiply(term, work, out=term)
        s += term
        qk += 1.0
        ck += 1.0
        k += 1
        if k % 8 == 0:
            np.subtract(1.0, za, out=work)
            work *= s
            work *= _TOLERANCE
            going = term > work
            if not going.all():
                total[rows[~going]] = s[~going]
                rows = rows[going]
                term, s, qk, ck, za = (a[going] for a in (term, s, qk, ck, za))
                work = work[going]
    return np.log(total)


def log_unit_2f1(
    q: np.ndarray, c: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ln S(q, c, z) and its derivatives in q, c and z, for 0 < q < c and 0 <= z < 1."""
    q, c, z = np.broadcast_arrays(
        np.asarray(q, np.float64), np.asarray(c, np.float64), np.asarray(z, np.float64)
    )
    value = np.empty(q.shape)
    d_q, d_c, d_z = np.empty(q.shape), np.empty(q.shape), np.empty(q.shape)
    near = (z > SERIES_UP_TO) & (c >= QUADRATURE_FROM_C)
    for mask, method in ((~near, _series), (near, _quadrature)):
        if mask.any():
            parts = method(q[mask], c[mask], z[mask])
            for out, part in zip((value, d_q, d_c, d_z), parts, strict=True):
                out[mask] = part
    return value, d_q, d_c, d_z


def _series(
    q: np.ndarray, c: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    size = q.size
    total, sum_q, sum_c, sum_z = np.empty(size), np.empty(size), np.empty(size), np.empty(size)
    rows = np.arange(size)
    # Running state of the rows still summing, updated in place (no temporaries):
    # the current term, the harmonic sums Σ 1/(q+j) and Σ 1/(c+j), the shifted q+k and
    # c+k, and the four sums.
    term, acc_q, acc_c = np.ones(size), np.zeros(size), np.zeros(size)
    qk, ck, za = q.copy(), c.copy(), z.copy()
    s, sq, sc, sz = np.ones(size), np.zeros(size), np.zeros(size), np.zeros(size)
    inv_q, inv_c, work = np.empty(size), np.empty(size), np.empty(size)
    k = 0
    while rows.size:
        np.divide(1.0, qk, out=inv_q)
        np.divide(1.0, ck, out=inv_c)
        np.multiply(term, qk, out=term)
        np.multiply(term, inv_c, out=term)  # the next term divided by z
        np.multiply(term, k + 1, out=work)
        sz += work
        acc_q += inv_q
        acc_c += inv_c
        np.multiply(term, za, out=term)
        s += term
        np.multiply(term, acc_q, out=work)
        sq += work
        np.multiply(term, acc_c, out=work)
        sc -= work
        qk += 1.0
        ck += 1.0
        k += 1
        if k % 8 == 0:
            np.subtract(1.0, za, out=work)
            np.multiply(work, work, out=work)
            work *= s
            work *= _TOLERANCE
            going = term * (k + 1) > work
            if not going.all():
                done = ~going
                finished = rows[done]
                total[finished], sum_q[finished] = s[done], sq[done]
                sum_c[finished], sum_z[finished] = sc[done], sz[done]
                rows = rows[going]
                term, acc_q, acc_c, qk, ck, za = (
                    a[going] for a in (term, acc_q, acc_c, qk, ck, za)
                )
                s, sq, sc, sz = s[going], sq[going], sc[going], sz[going]
                inv_q, inv_c, work = inv_q[going], inv_c[going], work[going]
    return np.log(total), sum_q / total, sum_c / total, sum_z / total


def _quadrature(
    q: np.ndarray, c: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    q, c, z = q[:, None], c[:, None], z[:, None]
    # 1 − z u = (1 − z) + z (1 − u), exact even when both z and u are close to 1.
    log_base = np.log((1.0 - z) + z * _ONE_MINUS_U)
    log_f = _LOG_W + (c - 2.0) * _LOG_ONE_MINUS_U - q * log_base
    peak = log_f.max(axis=1, keepdims=True)
    f = np.exp(log_f - peak)
    integral = f.sum(axis=1)
    value = np.log(c[:, 0] - 1.0) + np.log(integral) + peak[:, 0]
    d_q = -(f * log_base).sum(axis=1) / integral
    d_c = 1.0 / (c[:, 0] - 1.0) + (f * _LOG_ONE_MINUS_U).sum(axis=1) / integral
    d_z = q[:, 0] * (f * _U * np.exp(-log_base)).sum(axis=1) / integral
    return value, d_q, d_c, d_z
