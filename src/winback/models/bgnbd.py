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
gradient. Terms that depend on x alone are summed once per distinct x, terms in T once
per distinct T; only the softplus runs once per repeat-buyer pattern.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaln, digamma, gammaln, hyp2f1, log_expit
from scipy.stats import nbinom

from winback.models._data import (
    Patterns,
    as_array,
    as_rfm,
    as_weights,
    condense,
    dot,
    softplus_and_sigmoid,
)
from winback.models._optimize import Objective, maximize
from winback.models.errors import ModelFitError, ModelInputError

NAMES = ("r", "alpha", "a", "b")
MIN_CUSTOMERS = 10


def check_fittable(patterns: Patterns) -> None:
    """Raise ``ModelFitError`` when the base cannot identify a buy-till-you-die model."""
    if patterns.customers < MIN_CUSTOMERS:
        raise ModelFitError(
            f"only {patterns.customers:g} customers: at least {MIN_CUSTOMERS} are needed "
            "to fit a purchase model (use the day thresholds until the base grows)"
        )
    if not (patterns.x > 0).any():
        raise ModelFitError(
            "no customer has a repeat purchase: the model learns purchase rates and "
            "drop-out from repeat buyers, so it cannot be fitted on this base yet"
        )
    if not (patterns.T > 0).any():
        raise ModelFitError("every customer has T = 0: no time has been observed")


def time_scale(patterns: Patterns) -> float:
    """The factor that brings the mean customer age to 1, so the optimiser works on
    numbers near 1 whatever the time unit (days or weeks)."""
    return patterns.customers / dot(patterns.weight, patterns.T)


def _bgnbd_objective(patterns: Patterns) -> Objective:
    x, w = patterns.x, patterns.weight
    total = patterns.customers
    values_x, index_x = np.unique(x, return_inverse=True)
    weight_x = np.bincount(index_x, weights=w)
    ages, index_T = np.unique(patterns.T, return_inverse=True)
    weight_T = np.bincount(index_T, weights=w)
    weight_xT = np.bincount(index_T, weights=w * x)
    repeat = x > 0
    xr, tr, wr = x[repeat], patterns.t[repeat], w[repeat]
    index_Tr, index_xr = index_T[repeat], index_x[repeat]
    # 1/(b+x−1) is only used where x > 0; the x = 0 entry is never gathered.
    repeat_x = np.maximum(values_x - 1, 0)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        r, alpha, a, b = np.exp(theta)
        log_age = np.log(alpha + ages)
        inv_age = 1.0 / (alpha + ages)
        lgam = (
            gammaln(r + values_x)
            + gammaln(b + values_x)
            - gammaln(a + b + values_x)
            - gammaln(r)
            - gammaln(b)
            + gammaln(a + b)
            + r * np.log(alpha)
        )
        ll = dot(weight_x, lgam) - dot(r * weight_T + weight_xT, log_age)
        d_r = dot(weight_x, digamma(r + values_x) - digamma(r)) + total * np.log(alpha)
        d_r -= dot(weight_T, log_age)
        d_alpha = total * r / alpha - dot(r * weight_T + weight_xT, inv_age)
        psi_ab = digamma(a + b + values_x)
        d_a = total * digamma(a + b) - dot(weight_x, psi_ab)
        d_b = d_a + dot(weight_x, digamma(b + values_x)) - total * digamma(b)

        inv_b = 1.0 / (b + repeat_x)
        shifted = alpha + tr
        gap = log_age[index_Tr] - np.log(shifted)
        rx = r + xr
        d = np.log(a) + np.log(inv_b)[index_xr] + rx * gap
        softplus, sigmoid = softplus_and_sigmoid(d)
        ll += dot(wr, softplus)
        ws = wr * sigmoid
        sum_ws = ws.sum()
        d_r += dot(ws, gap)
        d_alpha += dot(ws * rx, inv_age[index_Tr] - 1.0 / shifted)
        d_a += sum_ws / a
        d_b -= dot(np.bincount(index_xr, weights=ws, minlength=values_x.size), inv_b)
        gradient = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return -ll / total, -gradient / total

    return objective


class BetaGeo:
    """The BG/NBD model. ``BetaGeo().fit(frequency, recency, T)`` estimates ``params``
    (``r``, ``alpha``, ``a``, ``b``, with α in the time unit of the data) by maximum
    likelihood; ``BetaGeo(params)`` rebuilds a fitted model from stored parameters.

    >>> model = BetaGeo().fit(frequency, recency, T)        # doctest: +SKIP
    >>> model.p_alive(frequency, recency, T)                 # doctest: +SKIP
    """

    kind = "bgnbd"

    def __init__(self, params: dict[str, float] | None = None) -> None:
        self.params: dict[str, float] = {}
        self.log_likelihood: float | None = None
        self.customers: float = 0.0
        if params is not None:
            missing = [name for name in NAMES if name not in params]
            if missing:
                raise ModelInputError(f"BG/NBD parameters: missing {', '.join(missing)}")
            self.params = {name: float(params[name]) for name in NAMES}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items()) or "not fitted"
        return f"BetaGeo({shown})"

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> BetaGeo:
        """Fit on one row per customer (or per pattern, with ``weights`` the number of
        customers sharing it). Raises ``ModelFitError`` when the base cannot be fitted."""
        x, t, age = as_rfm(frequency, recency, T)
        patterns = condense(x, t, age, as_weights(weights, x.size))
        check_fittable(patterns)
        scale = time_scale(patterns)
        theta, log_likelihood = maximize(
            _bgnbd_objective, patterns.rescaled(scale), np.zeros(4), NAMES
        )
        r, alpha, a, b = (float(v) for v in np.exp(theta))
        self.params = {"r": r, "alpha": alpha / scale, "a": a, "b": b}
        # The likelihood in the data's own time unit: each customer's density of purchase
        # times gains a factor scale^x from the change of unit.
        self.log_likelihood = log_likelihood + np.log(scale) * dot(patterns.weight, patterns.x)
        self.customers = patterns.customers
        return self

    def _unpack(self) -> tuple[float, float, float, float]:
        if not self.params:
            raise ModelFitError("the model is not fitted: call fit() first")
        return self.params["r"], self.params["alpha"], self.params["a"], self.params["b"]

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
        horizon = _horizon(t)
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
        horizon = _horizon(t)
        r, alpha, a, b = self._unpack()
        count = as_array("n", n)
        if (count < 0).any() or (count != np.floor(count)).any():
            raise ModelInputError("n: purchase counts must be whole numbers >= 0")
        p = alpha / (alpha + horizon)
        alive = np.exp(betaln(a, b + count) - betaln(a, b) + nbinom.logpmf(count, r, p))
        with np.errstate(divide="ignore"):
            dropped = np.exp(
                betaln(a + 1.0, b + np.maximum(count, 1) - 1.0)
                - betaln(a, b)
                + nbinom.logsf(count - 1, r, p)
            )
        return alive + np.where(count > 0, dropped, 0.0)


def _horizon(t: float) -> float:
    horizon = float(t)
    if not horizon >= 0 or not np.isfinite(horizon):
        raise ModelInputError(f"t = {t}: the horizon must be a finite number of periods >= 0")
    return horizon
