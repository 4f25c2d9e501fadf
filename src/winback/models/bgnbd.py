"""The BG/NBD model (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

While alive, a customer buys as a Poisson process of rate λ; after each repeat purchase
they drop out with probability p. λ is gamma(r, α) and p is beta(a, b) across customers.
From a customer's (frequency x, recency t_x, age T) the model gives the probability that
they are still alive, the purchases to expect in the next t periods, and, for a new
customer, the probability of exactly n purchases in t periods.

The log-likelihood of a pattern is (paper, section 7, in log space)

    ln L = A1 + A2 + ln(exp(A3) + [x > 0] exp(A4)),
    A1 = lnΓ(r+x) − lnΓ(r) + r ln α,      A2 = ln B(a, b+x) − ln B(a, b),
    A3 = −(r+x) ln(α+T),                  A4 = ln a − ln(b+x−1) − (r+x) ln(α+t_x),

written as A1 + A2 + A3 + softplus(A4 − A3) so nothing overflows, with its exact
gradient and Hessian. Terms that depend on x alone are summed once per distinct x,
one-time buyers once per distinct T; the rest runs once per repeat-buyer pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln, hyp2f1, log_expit, polygamma
from scipy.stats import nbinom

from winback.models._base import PurchaseModel, as_horizon
from winback.models._data import Patterns, as_counts, as_rfm, dot

# Repeat buyers are evaluated in blocks of this many rows: the dozen arrays of a block
# stay in the processor's cache, and the buffers are allocated (and faulted in) once.
BLOCK = 32_768


class _Objective:
    """The negative mean log-likelihood of BG/NBD on ``patterns`` in log-parameters, with
    its exact gradient and (``with_hessian``) Hessian.

    Built for bases of millions: everything that depends on the data alone is computed
    once here (the customers per repeat count, the split into one-time buyers, grouped by
    T, and repeat buyers); an evaluation makes one pass over the repeat buyers, block by
    block, with three logarithms and one exponential per row, writing into buffers
    allocated once (a fresh array of a million values costs more in page faults than the
    arithmetic on it)."""

    def __init__(self, patterns: Patterns) -> None:
        x, w = patterns.x, patterns.weight
        self.total = patterns.customers
        counts = x.astype(np.intp)
        weight_x = np.bincount(counts, weights=w)
        self.values_x = np.flatnonzero(weight_x).astype(np.float64)
        self.weight_x = weight_x[weight_x > 0]
        zero = counts == 0
        ones = int(np.count_nonzero(zero))
        if not counts[:ones].any():
            # One-time buyers first, as ``condense`` and ``sample`` leave them: slices.
            zero, repeat = slice(0, ones), slice(ones, None)
        else:
            repeat = ~zero
        self.T0, self.w0 = patterns.T[zero], w[zero]
        self.index = counts[repeat]
        self.x = x[repeat]
        self.t, self.T = patterns.t[repeat], patterns.T[repeat]
        weight = w[repeat]
        # Equal weights (one customer per row, or a uniform sample) are factored out.
        self.scale = float(weight[0]) if weight.size and (weight == weight[0]).all() else 1.0
        self.w = None if self.scale != 1.0 or (weight == 1.0).all() else weight
        self.repeat_x = np.arange(weight_x.size, dtype=np.float64) - 1.0
        self.repeat_x[0] = 0.0  # never gathered: only rows with x > 0 use the table
        size = min(self.x.size, BLOCK)
        self._buffers = [np.empty(size) for _ in range(8)]
        self._mask = np.empty(size, dtype=bool)

    def _block(
        self,
        rows: slice,
        r: float,
        alpha: float,
        table: np.ndarray,
        hessian: bool,
        sums: np.ndarray,
        per_x: np.ndarray,
    ) -> None:
        """Add one block of repeat buyers' sums (unscaled) to ``sums`` and ``per_x``:
        Σ ln(α+T), Σ x ln(α+T), Σ (r+x)/(α+T), Σ 1/(α+T), Σ (r+x)/(α+T)², Σ softplus(d),
        Σ σ gap, Σ σ u, Σ σ δ, Σ σ u (1/(α+T) + 1/(α+t)), Σ v gap², Σ v u², Σ v u gap,
        and per repeat count Σ σ, Σ v, Σ v gap, Σ v u; with σ = σ(d), v = σ(1 − σ),
        gap = ln(α+T) − ln(α+t), δ = 1/(α+T) − 1/(α+t), u = (r+x) δ = ∂d/∂α."""
        x, t, T, index = self.x[rows], self.t[rows], self.T[rows], self.index[rows]
        w = None if self.w is None else self.w[rows]
        size = x.size
        log_T, log_t, inv_T, inv_t, d, e, sigma, rx = (b[:size] for b in self._buffers)
        mask = self._mask[:size]

        def total(values: np.ndarray) -> float:
            return float(values.sum()) if w is None else dot(w, values)

        def by_x(values: np.ndarray) -> np.ndarray:
            weights = values if w is None else values * w
            return np.bincount(index, weights=weights, minlength=table.size)

        np.add(alpha, T, out=rx)
        np.log(rx, out=log_T)
        np.divide(1.0, rx, out=inv_T)
        np.add(alpha, t, out=rx)
        np.log(rx, out=log_t)
        np.divide(1.0, rx, out=inv_t)
        np.add(r, x, out=rx)
        sums[0] += total(log_T)
        sums[1] += total(np.multiply(x, log_T, out=e))
        sums[2] += total(np.multiply(rx, inv_T, out=e))
        if hessian:
            sums[3] += total(inv_T)
            sums[4] += total(np.multiply(e, inv_T, out=e))
        gap = np.subtract(log_T, log_t, out=log_T)
        np.multiply(rx, gap, out=d)
        np.take(table, index, out=e)
        d += e
        # softplus(d) = max(d, 0) + ln(1 + e^-|d|), σ(d) from the same exponential.
        np.abs(d, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.greater_equal(d, 0.0, out=mask)
        np.maximum(d, 0.0, out=d)
        sums[5] += total(d)
        np.add(e, 1.0, out=d)
        np.divide(1.0, d, out=sigma)
        np.log(d, out=d)
        sums[5] += total(d)
        np.multiply(e, sigma, out=e)
        np.copyto(e, sigma, where=mask)
        sigma, e = e, sigma  # sigma: σ(d); e: free
        delta = np.subtract(inv_T, inv_t, out=inv_T)
        u = np.multiply(rx, delta, out=d)
        per_x[0] += by_x(sigma)
        sums[6] += total(np.multiply(sigma, gap, out=e))
        sums[7] += total(np.multiply(sigma, u, out=e))
        if not hessian:
            return
        sums[8] += total(np.multiply(sigma, delta, out=e))
        # σ (r+x) (1/(α+t)² − 1/(α+T)²) = −σ u (1/(α+T) + 1/(α+t))
        np.add(inv_t, inv_t, out=e)
        np.add(e, delta, out=e)  # 1/(α+T) + 1/(α+t)
        np.multiply(e, u, out=e)
        sums[9] += total(np.multiply(e, sigma, out=e))
        v = np.subtract(1.0, sigma, out=log_t)
        np.multiply(v, sigma, out=v)
        per_x[1] += by_x(v)
        per_x[2] += by_x(np.multiply(v, gap, out=e))
        sums[10] += total(np.multiply(e, gap, out=e))
        per_x[3] += by_x(np.multiply(v, u, out=e))
        sums[11] += total(np.multiply(e, u, out=sigma))
        sums[12] += total(np.multiply(e, gap, out=e))

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient, _ = self.evaluate(theta, hessian=False)
        return value, gradient

    def with_hessian(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        value, gradient, hessian = self.evaluate(theta, hessian=True)
        assert hessian is not None
        return value, gradient, hessian

    def evaluate(
        self, theta: np.ndarray, *, hessian: bool
    ) -> tuple[float, np.ndarray, np.ndarray | None]:
        r, alpha, a, b = np.exp(theta)
        N = self.total
        vx, Wx = self.values_x, self.weight_x
        # Terms in x alone: lnΓ(r+x) − lnΓ(r) + r ln α + ln B(a, b+x) − ln B(a, b).
        ll = dot(Wx, gammaln(r + vx) + gammaln(b + vx) - gammaln(a + b + vx)) + N * (
            r * np.log(alpha) - gammaln(r) - gammaln(b) + gammaln(a + b)
        )
        psi_abx = digamma(a + b + vx)
        g = np.array(
            [
                dot(Wx, digamma(r + vx)) - N * digamma(r) + N * np.log(alpha),
                N * r / alpha,
                N * digamma(a + b) - dot(Wx, psi_abx),
                dot(Wx, digamma(b + vx) - psi_abx) - N * digamma(b) + N * digamma(a + b),
            ]
        )
        H = np.zeros((4, 4))
        if hessian:
            tri_abx = dot(Wx, polygamma(1, a + b + vx))
            H[0, 0] = dot(Wx, polygamma(1, r + vx)) - N * polygamma(1, r)
            H[0, 1] = N / alpha
            H[1, 1] = -N * r / alpha**2
            H[2, 2] = N * polygamma(1, a + b) - tri_abx
            H[2, 3] = H[2, 2]
            H[3, 3] = dot(Wx, polygamma(1, b + vx)) - tri_abx - N * polygamma(1, b)
            H[3, 3] += N * polygamma(1, a + b)

        # One-time buyers: −r ln(α+T), grouped by T.
        inv0 = 1.0 / (alpha + self.T0)
        log0 = np.log(alpha + self.T0)
        ll -= r * dot(self.w0, log0)
        g[0] -= dot(self.w0, log0)
        g[1] -= r * dot(self.w0, inv0)
        if hessian:
            H[0, 1] -= dot(self.w0, inv0)
            H[1, 1] += r * dot(self.w0, inv0 * inv0)

        # Repeat buyers: −(r+x) ln(α+T) + softplus(d),
        # d = ln a − ln(b+x−1) + (r+x) (ln(α+T) − ln(α+t)), block by block.
        inv_b = 1.0 / (b + self.repeat_x)
        table = np.log(a) + np.log(inv_b)
        sums = np.zeros(13)
        per_x = np.zeros((4, inv_b.size))
        for start in range(0, self.x.size, BLOCK):
            self._block(slice(start, start + BLOCK), r, alpha, table, hessian, sums, per_x)
        sums *= self.scale
        per_x *= self.scale
        ll -= r * sums[0] + sums[1] - sums[5]
        per_sigma = per_x[0]
        g[0] += sums[6] - sums[0]
        g[1] += sums[7] - sums[2]
        g[2] += per_sigma.sum() / a
        g[3] -= dot(per_sigma, inv_b)
        if hessian:
            per_v, per_v_gap, per_v_u = per_x[1:]
            H[0, 0] += sums[10]
            H[0, 1] += sums[8] + sums[12] - sums[3]
            H[1, 1] += sums[4] - sums[9] + sums[11]
            H[2, 2] += (per_v.sum() - per_sigma.sum()) / a**2  # ∂²d/∂a² = −1/a²
            H[3, 3] += dot(per_sigma + per_v, inv_b * inv_b)
            H[0, 2] = per_v_gap.sum() / a
            H[0, 3] = -dot(per_v_gap, inv_b)
            H[1, 2] = per_v_u.sum() / a
            H[1, 3] = -dot(per_v_u, inv_b)
            H[2, 3] -= dot(per_v, inv_b) / a
        params = np.array([r, alpha, a, b])
        gradient = g * params
        result = None
        if hessian:
            upper = np.triu(H)
            H = upper + upper.T - np.diag(np.diag(H))
            result = -(H * np.outer(params, params) + np.diag(gradient)) / N
        return -ll / N, -gradient / N, result


class BetaGeo(PurchaseModel):
    """The BG/NBD model. ``BetaGeo().fit(frequency, recency, T)`` estimates ``params``
    (``r``, ``alpha``, ``a``, ``b``, with α in the time unit of the data) by maximum
    likelihood; ``BetaGeo(params)`` rebuilds a fitted model from stored parameters.

    >>> model = BetaGeo().fit(frequency, recency, T)        # doctest: +SKIP
    >>> model.p_alive(frequency, recency, T)                 # doctest: +SKIP
    """

    kind = "bgnbd"
    label = "BG/NBD"
    names = ("r", "alpha", "a", "b")
    unit_names = ("alpha",)
    _objective = _Objective

    def log_likelihood_of(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Each customer's log-likelihood under the fitted parameters."""
        r, alpha, a, b = self._unpack()
        x, t, age = as_rfm(frequency, recency, T)
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
        a3 = -(r + x) * np.log(alpha + age)
        return head + a3 + np.logaddexp(0.0, self._log_odds_dead(x, t, age))

    def _log_odds_dead(self, x: np.ndarray, t: np.ndarray, age: np.ndarray) -> np.ndarray:
        """ln(A4/A3): the log odds that a customer dropped out after the last purchase
        against still being alive; −inf for customers with no repeat purchase."""
        r, alpha, a, b = self._unpack()
        with np.errstate(divide="ignore"):
            odds = (
                np.log(a)
                - np.log(np.maximum(b + x - 1, b))
                + (r + x) * (np.log(alpha + age) - np.log(alpha + t))
            )
        return np.where(x > 0, odds, -np.inf)

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still alive at the end of the observation
        (1 for customers with no repeat purchase, as in the paper)."""
        x, t, age = as_rfm(frequency, recency, T)
        return np.exp(log_expit(-self._log_odds_dead(x, t, age)))

    def _expected_if_alive(self, horizon: float, x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Paper, equation 10 without P(alive), with the hypergeometric term turned by
        Euler's transformation so that it stays finite for heavy buyers (Fader &
        Hardie's note on the BG/NBD "#NUM!" error)."""
        r, alpha, a, b = self._unpack()
        z = horizon / (alpha + age + horizon)
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(
            a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z
        )
        return (a + b + x - 1.0) / (a - 1.0) * bracket

    def probability_of_n_purchases(self, t: float, n: Any) -> np.ndarray:
        """Probability that a new customer makes exactly ``n`` repeat purchases in the
        first ``t`` periods (paper, equation 8)."""
        horizon = as_horizon(t)
        r, alpha, a, b = self._unpack()
        count = as_counts("n", n)
        p = alpha / (alpha + horizon)
        alive = np.exp(betaln(a, b + count) - betaln(a, b) + nbinom.logpmf(count, r, p))
        with np.errstate(divide="ignore"):
            dropped = np.exp(
                betaln(a + 1.0, b + np.maximum(count, 1) - 1.0)
                - betaln(a, b)
                + nbinom.logsf(count - 1, r, p)
            )
        return alive + np.where(count > 0, dropped, 0.0)
