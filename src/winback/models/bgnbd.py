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

written as A1 + A2 + A4 + ln(1 + e^(A3 − A4)) so nothing overflows (A3 − A4 <= −ln a +
ln(b+x−1)), with its exact gradient and Hessian. Terms that depend on x alone are summed
once per distinct x, one-time buyers once per distinct T; the rest runs once per
repeat-buyer pattern, with two logarithms and one exponential per row (see
``_Objective``): NumPy's float64 logarithm and exponential call the C library once per
element on machines without AVX-512 and cost ten to twenty times a multiplication, so
their number, not the arithmetic around them, sets the time of a fit on a million
customers. Why our own numerics rather than a compiled kernel (Numba, numexpr): one more
dependency, and a compile or start-up cost of its own, for a pass that NumPy already runs
quickly (see bench/RESULTS.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln, hyp2f1, log_expit, polygamma

from winback.models._base import PurchaseModel, as_horizon
from winback.models._data import Patterns, as_counts, as_rfm, dot

# Repeat buyers are evaluated in blocks of this many rows: the arrays of a block stay in
# the processor's cache, the buffers are allocated (and faulted in) once, and a dot
# product this short runs on one thread (OpenBLAS splits those over 10,000 terms, which
# costs more than it saves on a busy machine).
BLOCK = 9_984
# Σ ln(1 + e^-d) is taken as the logarithm of products of 2**PRODUCT_LEVELS terms: NumPy's
# float64 logarithm is the C library's, one call per element, and costs as much as a
# dozen multiplications.
PRODUCT_LEVELS = 3
_TINY = float(np.finfo(np.float64).tiny)
_HUGE = float(np.finfo(np.float64).max)

# The per-block sums of repeat buyers (``_Objective._block``), in order; the gradient
# needs the first nine.
SUMS = (
    *("ln_T", "x_ln_T", "rx_gap", "ln_1pE", "rx_iT", "sig", "sig_ib", "sig_gap", "sig_u"),
    *("iT", "rx_iT2", "sig_delta", "sig_u_it", "v", "v_ib", "sv_ib2", "v_gap", "v_gap_ib"),
    *("v_gap2", "v_u", "v_u_ib", "v_u2", "v_u_gap"),
)
GRADIENT_SUMS = 9


def _sum_log(values: np.ndarray, scratch: np.ndarray) -> float:
    """Σ ln v for positive values, as the logarithm of products of eight terms (folded
    by halves, so every multiplication runs on contiguous memory); term by term if a
    product leaves the normal float64 range."""
    total = 0.0
    product = values
    for _ in range(PRODUCT_LEVELS):
        half = product.size // 2
        if product.size % 2:
            total += float(np.log(product[-1]))
        product = np.multiply(product[:half], product[half : 2 * half], out=scratch[:half])
    if product.size and not (product.min() >= _TINY and product.max() <= _HUGE):
        return float(np.log(values, out=scratch[: values.size]).sum())
    return total + float(np.log(product, out=product).sum())


class _Objective:
    """The negative mean log-likelihood of BG/NBD on ``patterns`` in log-parameters, with
    its exact gradient and (``with_hessian``) Hessian.

    Built for bases of millions: everything that depends on the data alone is computed
    once here (the customers per repeat count, the split into one-time buyers, grouped by
    T, and repeat buyers); an evaluation makes one pass over the repeat buyers, block by
    block, writing into buffers allocated once (a fresh array of a million values costs
    more in page faults than the arithmetic on it). A repeat buyer's term is written

        −(r+x) ln(α+T) + ln a − ln(b+x−1) + (r+x) gap + ln(1 + E),
        gap = ln((α+T)/(α+t)),   E = (b+x−1)/a · e^-(r+x) gap = e^-d,

    so a row costs two logarithms and one exponential (the paper's form takes four);
    Σ ln(1 + E) is taken from products (``_sum_log``) and the terms in x alone from the
    customers per x. E <= (b+x−1)/a, so 1 + E cannot overflow."""

    def __init__(self, patterns: Patterns) -> None:
        x, w = patterns.x, patterns.weight
        self.total = patterns.customers
        # Customers per repeat count, a slice at a time (a million-value array of indexes
        # costs more in page faults than the counting).
        weight_x = np.zeros(int(x.max()) + 1)
        for start in range(0, x.size, 8 * BLOCK):
            part = slice(start, start + 8 * BLOCK)
            counts = x[part].astype(np.intp)
            weight_x += np.bincount(counts, weights=w[part], minlength=weight_x.size)
        self.values_x = np.flatnonzero(weight_x).astype(np.float64)
        self.weight_x = weight_x[weight_x > 0]
        zero = x == 0
        ones = int(np.count_nonzero(zero))
        if not x[:ones].any():
            # One-time buyers first, as ``condense`` and ``sample`` leave them: slices.
            zero, repeat = slice(0, ones), slice(ones, None)
        else:
            repeat = ~zero
        self.T0, self.w0 = patterns.T[zero], w[zero]
        self.x = x[repeat]
        self.t, self.T = patterns.t[repeat], patterns.T[repeat]
        weight = w[repeat]
        # Equal weights (one customer per row, or a uniform sample) are factored out.
        uniform = not weight.size or weight.min() == weight.max()
        self.scale = float(weight[0]) if weight.size and uniform else 1.0
        self.w = None if uniform else weight
        repeat_x = self.values_x > 0
        self.repeat_x, self.repeat_weight = self.values_x[repeat_x], self.weight_x[repeat_x]
        size = min(self.x.size, BLOCK)
        self._buffers = [np.empty(size) for _ in range(10)]

    def _block(
        self, rows: slice, r: float, alpha: float, a: float, b: float, hessian: bool, value: bool
    ) -> list[float]:
        """One block of repeat buyers' sums, unscaled, in the order of ``SUMS``:
        Σ ln(α+T), Σ x ln(α+T), Σ (r+x) gap, Σ ln(1+E), Σ (r+x)/(α+T), Σ σ,
        Σ σ/(b+x−1), Σ σ gap, Σ σ u and, for the Hessian, Σ 1/(α+T), Σ (r+x)/(α+T)²,
        Σ σ δ, Σ σ u (1/(α+T) + 1/(α+t)), Σ v, Σ v/(b+x−1), Σ (σ+v)/(b+x−1)², Σ v gap,
        Σ v gap/(b+x−1), Σ v gap², Σ v u, Σ v u/(b+x−1), Σ v u², Σ v u gap; with
        σ = σ(d) = 1/(1+E), v = σ(1 − σ), δ = 1/(α+T) − 1/(α+t), u = (r+x) δ = ∂d/∂α.
        Without ``value``, the sums that only the value needs (Σ x ln(α+T), Σ (r+x) gap,
        Σ ln(1+E)) are left at 0 and Σ ln(α+T) is taken from products (without weights):
        one logarithm per row instead of two."""
        x, t, T = self.x[rows], self.t[rows], self.T[rows]
        w = None if self.w is None else self.w[rows]
        size = x.size
        log_T, inv_T, inv_t, gap, rx, E, ib, sigma, u, scratch = (
            buffer[:size] for buffer in self._buffers
        )

        def total(values: np.ndarray) -> float:
            return float(values.sum() if w is None else np.dot(w, values))

        def pair(p: np.ndarray, q: np.ndarray) -> float:
            if w is None:
                return float(np.dot(p, q))
            return float(np.dot(w, np.multiply(p, q, out=scratch)))

        np.add(alpha, T, out=inv_T)
        if value or w is not None:
            np.log(inv_T, out=log_T)
            sums = [total(log_T), pair(x, log_T) if value else 0.0]
        else:
            sums = [_sum_log(inv_T, scratch), 0.0]
        np.add(alpha, t, out=inv_t)
        np.log(np.divide(inv_T, inv_t, out=gap), out=gap)
        np.divide(1.0, inv_T, out=inv_T)
        np.divide(1.0, inv_t, out=inv_t)
        np.add(r, x, out=rx)
        np.multiply(rx, gap, out=E)
        sums.append(total(E) if value else 0.0)
        np.exp(np.negative(E, out=E), out=E)
        np.add(x, b - 1.0, out=ib)
        np.multiply(E, ib, out=E)
        np.multiply(E, 1.0 / a, out=E)
        np.divide(1.0, ib, out=ib)
        np.add(E, 1.0, out=sigma)
        if not value:
            sums.append(0.0)
        elif w is None:
            sums.append(_sum_log(sigma, scratch))
        else:
            sums.append(total(np.log(sigma, out=u)))
        np.divide(1.0, sigma, out=sigma)
        delta = np.subtract(inv_T, inv_t, out=log_T)
        np.multiply(rx, delta, out=u)
        sums += [pair(rx, inv_T), total(sigma), pair(sigma, ib), pair(sigma, gap), pair(sigma, u)]
        if not hessian:
            return sums
        v = np.multiply(E, sigma, out=E)
        np.multiply(v, sigma, out=v)
        sums += [total(inv_T), pair(np.multiply(rx, inv_T, out=rx), inv_T), pair(sigma, delta)]
        # σ (r+x) (1/(α+t)² − 1/(α+T)²) = −σ u (1/(α+T) + 1/(α+t))
        np.multiply(np.add(inv_T, inv_t, out=inv_t), u, out=inv_t)
        sums += [pair(inv_t, sigma), total(v), pair(v, ib)]
        np.multiply(np.add(sigma, v, out=sigma), ib, out=sigma)
        sums += [pair(sigma, ib), pair(v, gap)]
        v_gap = np.multiply(v, gap, out=log_T)
        sums += [pair(v_gap, ib), pair(v_gap, gap), pair(v, u)]
        v_u = np.multiply(v, u, out=gap)
        sums += [pair(v_u, ib), pair(v_u, u), pair(v_gap, u)]
        return sums

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        value, gradient, _ = self.evaluate(theta, hessian=False)
        return value, gradient

    def with_hessian(
        self, theta: np.ndarray, value: bool = True
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """The value (NaN without ``value``: a little cheaper), gradient and Hessian."""
        found, gradient, hessian = self.evaluate(theta, hessian=True, value=value)
        assert hessian is not None
        return found, gradient, hessian

    def evaluate(
        self, theta: np.ndarray, *, hessian: bool, value: bool = True
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

        # Repeat buyers, block by block; ln a − ln(b+x−1) summed per x.
        totals = np.zeros(len(SUMS) if hessian else GRADIENT_SUMS)
        # E overflows only where σ(d) = 1/(1+E) is 0 to double precision anyway.
        with np.errstate(over="ignore", under="ignore"):
            for start in range(0, self.x.size, BLOCK):
                rows = slice(start, start + BLOCK)
                totals += self._block(rows, r, alpha, a, b, hessian, value)
        s = dict(zip(SUMS, totals * self.scale, strict=False))
        ll += self.repeat_weight.sum() * np.log(a) - dot(
            self.repeat_weight, np.log(b - 1.0 + self.repeat_x)
        )
        ll += s["rx_gap"] + s["ln_1pE"] - r * s["ln_T"] - s["x_ln_T"]
        g[0] += s["sig_gap"] - s["ln_T"]
        g[1] += s["sig_u"] - s["rx_iT"]
        g[2] += s["sig"] / a
        g[3] -= s["sig_ib"]
        if hessian:
            H[0, 0] += s["v_gap2"]
            H[0, 1] += s["sig_delta"] + s["v_u_gap"] - s["iT"]
            H[1, 1] += s["rx_iT2"] - s["sig_u_it"] + s["v_u2"]
            H[2, 2] += (s["v"] - s["sig"]) / a**2  # ∂²d/∂a² = −1/a²
            H[3, 3] += s["sv_ib2"]
            H[0, 2] = s["v_gap"] / a
            H[0, 3] = -s["v_gap_ib"]
            H[1, 2] = s["v_u"] / a
            H[1, 3] = -s["v_u_ib"]
            H[2, 3] -= s["v_ib"] / a
        params = np.array([r, alpha, a, b])
        gradient = g * params
        result = None
        if hessian:
            upper = np.triu(H)
            H = upper + upper.T - np.diag(np.diag(H))
            result = -(H * np.outer(params, params) + np.diag(gradient)) / N
        return (-ll / N if value else np.nan), -gradient / N, result


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
        return np.asarray(head + a3 + np.logaddexp(0.0, self._log_odds_dead(x, t, age)))

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
        return np.asarray(np.exp(log_expit(-self._log_odds_dead(x, t, age))))

    def _expected_if_alive(self, horizon: float, x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Paper, equation 10 without P(alive), with the hypergeometric term turned by
        Euler's transformation so that it stays finite for heavy buyers (Fader &
        Hardie's note on the BG/NBD "#NUM!" error)."""
        r, alpha, a, b = self._unpack()
        z = horizon / (alpha + age + horizon)
        bracket = 1.0 - (1.0 - z) ** (a - 1.0) * hyp2f1(
            a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z
        )
        return np.asarray((a + b + x - 1.0) / (a - 1.0) * bracket)

    def probability_of_n_purchases(self, t: float, n: Any) -> np.ndarray:
        """Probability that a new customer makes exactly ``n`` repeat purchases in the
        first ``t`` periods (paper, equation 8)."""
        horizon = as_horizon(t)
        r, alpha, a, b = self._unpack()
        count = as_counts("n", n)
        # Imported here: scipy.stats is slow to import, which every winback command
        # would pay (the score imports this module).
        from scipy.stats import nbinom

        p = alpha / (alpha + horizon)
        alive = np.exp(betaln(a, b + count) - betaln(a, b) + nbinom.logpmf(count, r, p))
        with np.errstate(divide="ignore"):
            dropped = np.exp(
                betaln(a + 1.0, b + np.maximum(count, 1) - 1.0)
                - betaln(a, b)
                + nbinom.logsf(count - 1, r, p)
            )
        return np.asarray(alive + np.where(count > 0, dropped, 0.0))
