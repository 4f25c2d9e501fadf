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

from winback.models._base import PurchaseModel, as_horizon
from winback.models._data import Patterns, as_counts, as_rfm, dot, softplus_and_sigmoid
from winback.models._optimize import Objective


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
    _objective = staticmethod(_bgnbd_objective)

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
