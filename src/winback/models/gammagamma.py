"""The Gamma-Gamma model of spend (Fader & Hardie, "The Gamma-Gamma model of monetary
value", 2013; Colombo & Jiang 1999).

A customer's transaction values are gamma(p, ν) around their own mean, and ν is
gamma(q, γ) across customers. Given x repeat transactions with average value m, the
expected value of that customer's next transactions shrinks m toward the population mean:

    E[M | x, m] = p (γ + x m) / (p x + q − 1).

Only repeat buyers with a positive average spend carry information on spend: the fit
leaves out customers with x = 0 (their average is not observed) and those whose average
spend is zero or negative (refunds, free orders), whose likelihood is undefined, and
reports how many it left out. The model assumes spend does not depend on purchase
frequency; check that on the base before trusting the value it gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma, gammaln

from winback.models._base import MIN_CUSTOMERS, Model
from winback.models._data import Patterns, as_array, as_counts, as_weights, dot
from winback.models._optimize import Objective, maximize
from winback.models.errors import ModelFitError, ModelInputError


def _objective(data: Patterns) -> Objective:
    """Here ``data.x`` is the repeat count, ``data.t`` the average spend (scaled to mean
    1) and ``data.T`` its logarithm; terms in x alone are summed once per distinct x."""
    x, spend, log_spend, w = data.x, data.t, data.T, data.weight
    total = data.customers
    values_x, index_x = np.unique(x, return_inverse=True)
    weight_x = np.bincount(index_x, weights=w)
    log_x = np.log(values_x)
    sum_x_log = dot(w * x, log_spend)
    sum_log = dot(w, log_spend)
    spent = spend * x
    wx = w * x

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        p, q, gamma = np.exp(theta)
        px = p * values_x
        log_total = np.log(gamma + spent)
        ll = dot(weight_x, gammaln(px + q) - gammaln(px) + px * log_x)
        ll += total * (q * np.log(gamma) - gammaln(q)) + p * sum_x_log - sum_log
        ll -= p * dot(wx, log_total) + q * dot(w, log_total)
        psi = digamma(px + q)
        d_p = dot(weight_x * values_x, psi - digamma(px) + log_x) + sum_x_log
        d_p -= dot(wx, log_total)
        d_q = dot(weight_x, psi) - total * digamma(q) + total * np.log(gamma)
        d_q -= dot(w, log_total)
        inv = 1.0 / (gamma + spent)
        d_gamma = total * q / gamma - p * dot(wx, inv) - q * dot(w, inv)
        gradient = np.array([d_p * p, d_q * q, d_gamma * gamma])
        return -ll / total, -gradient / total

    return objective


class GammaGamma(Model):
    """The Gamma-Gamma spend model. ``GammaGamma().fit(frequency, monetary_value)``
    estimates ``params`` (``p``, ``q``, ``gamma``, with γ in the currency of the data);
    ``GammaGamma(params)`` rebuilds a fitted model from stored parameters."""

    kind = "gammagamma"
    label = "Gamma-Gamma"
    names = ("p", "q", "gamma")
    unit_names = ("gamma",)

    def __init__(self, params: dict[str, float] | None = None) -> None:
        super().__init__(params)
        self.left_out = 0.0

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None) -> GammaGamma:
        """Fit on the customers with at least one repeat purchase and a positive average
        spend (the others are counted in ``left_out``). ``monetary_value`` is the average
        value of each customer's repeat transactions."""
        x, spend = _as_spend(frequency, monetary_value)
        w = as_weights(weights, x.size)
        used = (x > 0) & (spend > 0) & (w > 0)
        self.left_out = float(w[~used].sum())
        x, spend, w = x[used], spend[used], w[used]
        if w.sum() < MIN_CUSTOMERS:
            raise ModelFitError(
                f"only {w.sum():g} repeat buyers with a positive average spend: at least "
                f"{MIN_CUSTOMERS} are needed to fit the Gamma-Gamma spend model"
            )
        scale = float(w.sum()) / dot(w, spend)
        scaled = spend * scale
        if np.ptp(scaled) == 0:
            raise ModelFitError(
                "every repeat buyer has the same average spend: the spread of spend "
                "across customers cannot be estimated"
            )
        data = Patterns(x, scaled, np.log(scaled), w)
        theta, log_likelihood = maximize(_objective, data, np.zeros(3), self.names)
        q = float(np.exp(theta[1]))
        if q <= 1:
            raise ModelFitError(
                f"degenerate fit: q = {q:.3g} <= 1 means the average spend across customers "
                "has no finite mean; the spend data is too heavy-tailed for Gamma-Gamma"
            )
        # Back to the data's currency: each average spend's density gains 1/scale.
        log_likelihood += data.customers * np.log(scale)
        self._set_fit(theta, scale, log_likelihood, data.customers)
        return self

    def expected_spend(self, frequency: Any, monetary_value: Any) -> np.ndarray:
        """Expected average value of each customer's future transactions: their own
        average shrunk toward the population mean, the less the fewer purchases they
        made; the population mean p γ / (q − 1) for customers with no repeat purchase."""
        p, q, gamma = self._unpack()
        x, spend = _as_spend(frequency, monetary_value)
        observed = np.where(x > 0, spend, 0.0)
        return p * (gamma + x * observed) / (p * x + q - 1.0)


def _as_spend(frequency: Any, monetary_value: Any) -> tuple[np.ndarray, np.ndarray]:
    x = as_counts("frequency", frequency)
    spend = as_array("monetary_value", monetary_value)
    if x.size != spend.size:
        raise ModelInputError(
            f"frequency and monetary_value must have one value per customer; "
            f"got lengths {x.size} and {spend.size}"
        )
    return x, spend
