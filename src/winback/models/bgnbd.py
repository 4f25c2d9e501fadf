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


class _Objective:
    """The negative mean log-likelihood of BG/NBD on ``patterns`` in log-parameters, with
    its exact gradient and (``with_hessian``) Hessian.

    Built for bases of millions: everything that depends on the data alone is computed
    once here (the customers per repeat count, the split into one-time buyers, grouped by
    T, and repeat buyers); an evaluation makes one pass over the repeat buyers with three
    logarithms and one exponential per row, writing into buffers allocated once (a fresh
    array of a million values costs more in page faults than the arithmetic on it)."""

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
        size = self.x.size
        self._buffers = [np.empty(size) for _ in range(8)]
        self._mask = np.empty(size, dtype=bool)

    def _sum(self, values: np.ndarray) -> float:
        if self.w is None:
            return float(values.sum()) * self.scale
        return dot(self.w, values)

    def _per_x(self, values: np.ndarray) -> np.ndarray:
        """Weighted sums of ``values`` per repeat count."""
        weights = values if self.w is None else values * self.w
        sums = np.bincount(self.index, weights=weights, minlength=self.repeat_x.size)
        return sums * self.scale

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
        # d = ln a − ln(b+x−1) + (r+x) (ln(α+T) − ln(α+t)).
        log_T, log_t, inv_T, inv_t, d, e, sigma, tmp = self._buffers
        mask = self._mask
        np.add(alpha, self.T, out=tmp)
        np.log(tmp, out=log_T)
        np.divide(1.0, tmp, out=inv_T)
        np.add(alpha, self.t, out=tmp)
        np.log(tmp, out=log_t)
        np.divide(1.0, tmp, out=inv_t)
        rx = np.add(r, self.x, out=tmp)
        ll -= r * self._sum(log_T) + self._sum(np.multiply(self.x, log_T, out=e))
        g[0] -= self._sum(log_T)
        g[1] -= self._sum(np.multiply(rx, inv_T, out=e))
        if hessian:
            H[0, 1] -= self._sum(inv_T)
            np.multiply(e, inv_T, out=e)
            H[1, 1] += self._sum(e)
        inv_b = 1.0 / (b + self.repeat_x)
        table = np.log(a) + np.log(inv_b)
        gap = np.subtract(log_T, log_t, out=log_T)
        np.multiply(rx, gap, out=d)
        d += table[self.index]
        # softplus(d) = max(d, 0) + ln(1 + e^-|d|), σ(d) from the same exponential.
        np.abs(d, out=e)
        np.negative(e, out=e)
        np.exp(e, out=e)
        np.greater_equal(d, 0.0, out=mask)
        np.maximum(d, 0.0, out=d)
        ll += self._sum(d)
        np.add(e, 1.0, out=d)
        np.divide(1.0, d, out=sigma)
        np.log(d, out=d)
        ll += self._sum(d)
        np.multiply(e, sigma, out=e)
        np.copyto(e, sigma, where=mask)
        sigma, e = e, sigma  # sigma: σ(d); e: free
        delta = np.subtract(inv_T, inv_t, out=inv_T)  # ∂d/∂α = (r+x) δ
        u = np.multiply(rx, delta, out=d)
        per_x = self._per_x(sigma)
        g[0] += self._sum(np.multiply(sigma, gap, out=e))
        g[1] += self._sum(np.multiply(sigma, u, out=e))
        g[2] += per_x.sum() / a
        g[3] -= dot(per_x, inv_b)
        if hessian:
            H[0, 1] += self._sum(np.multiply(sigma, delta, out=e))
            # σ (r+x) (1/(α+t)² − 1/(α+T)²) = −σ u (1/(α+T) + 1/(α+t))
            np.add(delta, inv_t, out=inv_t)  # back to 1/(α+T)
            np.add(inv_t, inv_t, out=e)
            np.subtract(e, delta, out=e)  # 1/(α+T) + 1/(α+t)
            np.multiply(e, u, out=e)
            np.multiply(e, sigma, out=e)
            H[1, 1] -= self._sum(e)
            H[2, 2] -= per_x.sum() / a**2  # ∂²d/∂a² = −1/a²
            H[3, 3] += dot(per_x, inv_b * inv_b)
            v = np.subtract(1.0, sigma, out=log_t)
            np.multiply(v, sigma, out=v)  # σ (1 − σ)
            per_v = self._per_x(v)
            per_v_gap = self._per_x(np.multiply(v, gap, out=e))
            H[0, 0] += self._sum(np.multiply(e, gap, out=e))
            per_v_u = self._per_x(np.multiply(v, u, out=e))
            H[1, 1] += self._sum(np.multiply(e, u, out=sigma))
            H[0, 1] += self._sum(np.multiply(e, gap, out=e))
            H[0, 2] = per_v_gap.sum() / a
            H[0, 3] = -dot(per_v_gap, inv_b)
            H[1, 2] = per_v_u.sum() / a
            H[1, 3] = -dot(per_v_u, inv_b)
            H[2, 2] += per_v.sum() / a**2
            H[2, 3] -= dot(per_v, inv_b) / a
            H[3, 3] += dot(per_v, inv_b * inv_b)
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

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases of each customer in the next ``t`` periods
        (paper, equation 10), with the hypergeometric term turned by Euler's
        transformation so that it stays finite for heavy buyers (Fader & Hardie's note
        on the BG/NBD "#NUM!" error)."""
        horizon = as_horizon(t)
        r, alpha, a, b = self._unpack()
        x, recent, age = as_rfm(frequency, recency, T)
        z = horizon / (alpha + age + horizon)
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(
            a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z
        )
        alive = self.p_alive(x, recent, age)
        return (a + b + x - 1.0) / (a - 1.0) * bracket * alive

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
