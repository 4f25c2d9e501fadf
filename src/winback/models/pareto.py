"""The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), in the formulation of
Fader & Hardie ("A note on deriving the Pareto/NBD model and related expressions", 2005).

While alive a customer buys as a Poisson process of rate λ, and dies after an
exponential lifetime of rate μ; λ is gamma(r, α) and μ gamma(s, β) across customers.
Same questions as BG/NBD, but death can come at any time, not only after a purchase.

The likelihood of a pattern (x, t_x, T), with m = r + s + x, is

    L = Γ(r+x) α^r β^s / Γ(r) · [ s/m · A(t_x) + (r+x)/m · B(T) ],

the subtraction-free form (as PyMC-Marketing writes it) of the paper's equation, where A
and B hold a Gaussian hypergeometric function 2F1(m, ·; m+1; z). Each 2F1 is turned by
Euler's transformation into a series of positive terms (``_hyp2f1``), so the two terms
are positive and added in log space: nothing cancels, nothing overflows. The gradient is
exact: the series is differentiated term by term in its parameters and argument (and the
quadrature used when z is near 1 under the integral sign), so the fit runs BFGS with the
true gradient, not finite differences.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.integrate import quad_vec
from scipy.special import digamma, expit, gammaln

from winback.models._base import PurchaseModel, as_horizon
from winback.models._data import Patterns, as_counts, as_rfm, dot, group
from winback.models._hyp2f1 import log_unit_2f1, log_unit_2f1_value
from winback.models._optimize import Objective

# (r, α, s, β)
Params = tuple[float, ...]


def _term_A(
    params: Params, x: np.ndarray, t: np.ndarray, gradient: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """ln(s/m · A(t_x)) and (unless not ``gradient``) its gradient in (r, α, s, β), one
    column per row."""
    r, alpha, s, beta = params
    m = r + s + x
    at, bt = alpha + t, beta + t
    log_at, log_bt = np.log(at), np.log(bt)
    if alpha >= beta:
        q, z = r + x, (alpha - beta) / at
        lead = -(r + x) * log_at - s * log_bt
    else:
        q, z = np.full_like(x, s + 1.0), (beta - alpha) / bt
        lead = -(s + 1.0) * log_bt + (1.0 - r - x) * log_at
    if not gradient:
        return np.log(s) - np.log(m) + lead + log_unit_2f1_value(q, m + 1.0, z), None
    log_s, d_q, d_c, d_z = log_unit_2f1(q, m + 1.0, z)
    value = np.log(s) - np.log(m) + lead + log_s
    d_r = -1.0 / m - log_at + d_c
    d_s = 1.0 / s - 1.0 / m - log_bt + d_c
    if alpha >= beta:
        d_r += d_q
        d_alpha = -(r + x) / at + d_z * bt / at**2
        d_beta = -s / bt - d_z / at
    else:
        d_s += d_q
        d_alpha = (1.0 - r - x) / at - d_z / bt
        d_beta = -(s + 1.0) / bt + d_z * at / bt**2
    return value, np.array([d_r, d_alpha, d_s, d_beta])


def _term_B(
    params: Params, x: np.ndarray, T: np.ndarray, gradient: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """ln((r+x)/m · B(T)) and (unless not ``gradient``) its gradient in (r, α, s, β), one
    column per row."""
    r, alpha, s, beta = params
    m = r + s + x
    aT, bT = alpha + T, beta + T
    log_aT, log_bT = np.log(aT), np.log(bT)
    if alpha >= beta:
        q, z = r + x + 1.0, (alpha - beta) / aT
        lead = -(r + x + 1.0) * log_aT + (1.0 - s) * log_bT
    else:
        q, z = np.full_like(x, s), (beta - alpha) / bT
        lead = -s * log_bT - (r + x) * log_aT
    if not gradient:
        return np.log(r + x) - np.log(m) + lead + log_unit_2f1_value(q, m + 1.0, z), None
    log_s, d_q, d_c, d_z = log_unit_2f1(q, m + 1.0, z)
    value = np.log(r + x) - np.log(m) + lead + log_s
    d_r = 1.0 / (r + x) - 1.0 / m - log_aT + d_c
    d_s = -1.0 / m - log_bT + d_c
    if alpha >= beta:
        d_r += d_q
        d_alpha = -(r + x + 1.0) / aT + d_z * bT / aT**2
        d_beta = (1.0 - s) / bT - d_z / aT
    else:
        d_s += d_q
        d_alpha = -(r + x) / aT - d_z / bT
        d_beta = -s / bT + d_z * aT / bT**2
    return value, np.array([d_r, d_alpha, d_s, d_beta])


def _pareto_objective(patterns: Patterns) -> Objective:
    x, w = patterns.x, patterns.weight
    total = patterns.customers
    values_x, index_x = np.unique(x, return_inverse=True)
    weight_x = np.bincount(index_x, weights=w)
    zeros = np.zeros_like(x)
    # A depends on (x, t_x), B on (x, T): each is computed once per distinct pair.
    first_A, index_A = group(x, patterns.t, zeros)
    first_B, index_B = group(x, zeros, patterns.T)
    x_A, t_A = x[first_A], patterns.t[first_A]
    x_B, T_B = x[first_B], patterns.T[first_B]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        params = tuple(np.exp(theta))
        r, alpha, s, beta = params
        value_A, grad_A = _term_A(params, x_A, t_A)
        value_B, grad_B = _term_B(params, x_B, T_B)
        assert grad_A is not None and grad_B is not None
        a, b = value_A[index_A], value_B[index_B]
        share_A = w * expit(a - b)
        ll = dot(weight_x, gammaln(r + values_x)) + total * (
            r * np.log(alpha) + s * np.log(beta) - gammaln(r)
        )
        ll += dot(w, np.logaddexp(a, b))
        gradient = np.array(
            [
                dot(weight_x, digamma(r + values_x)) + total * (np.log(alpha) - digamma(r)),
                total * r / alpha,
                total * np.log(beta),
                total * s / beta,
            ]
        )
        gradient += np.einsum(
            "ij,j->i", grad_A, np.bincount(index_A, weights=share_A, minlength=x_A.size)
        )
        gradient += np.einsum(
            "ij,j->i", grad_B, np.bincount(index_B, weights=w - share_A, minlength=x_B.size)
        )
        return -ll / total, -(gradient * np.exp(theta)) / total

    return objective


class ParetoNBD(PurchaseModel):
    """The Pareto/NBD model. ``ParetoNBD().fit(frequency, recency, T)`` estimates
    ``params`` (``r``, ``alpha``, ``s``, ``beta``, α and β in the time unit of the data);
    ``ParetoNBD(params)`` rebuilds a fitted model from stored parameters. Same methods as
    ``BetaGeo``."""

    kind = "pareto"
    label = "Pareto/NBD"
    names = ("r", "alpha", "s", "beta")
    unit_names = ("alpha", "beta")
    _objective = staticmethod(_pareto_objective)

    def _log_terms(
        self, x: np.ndarray, t: np.ndarray, age: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """ln of the two likelihood terms per customer, each computed once per distinct
        (x, t_x) and (x, T) pair."""
        params = self._unpack()
        zeros = np.zeros_like(x)
        first_A, index_A = group(x, t, zeros)
        first_B, index_B = group(x, zeros, age)
        value_A, _ = _term_A(params, x[first_A], t[first_A], gradient=False)
        value_B, _ = _term_B(params, x[first_B], age[first_B], gradient=False)
        return value_A[index_A], value_B[index_B]

    def log_likelihood_of(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Each customer's log-likelihood under the fitted parameters."""
        r, alpha, s, beta = self._unpack()
        x, t, age = as_rfm(frequency, recency, T)
        a, b = self._log_terms(x, t, age)
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        return np.asarray(head + np.logaddexp(a, b))

    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still alive at the end of the observation:
        the share of the likelihood in which their lifetime outlasts T."""
        r, alpha, s, beta = self._unpack()
        x, t, age = as_rfm(frequency, recency, T)
        a, b = self._log_terms(x, t, age)
        survived = -(r + x) * np.log(alpha + age) - s * np.log(beta + age)
        return np.asarray(np.minimum(1.0, np.exp(survived - np.logaddexp(a, b))))

    def _expected_if_alive(self, horizon: float, x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Fader & Hardie 2005, equation 22 without P(alive), stable at s = 1."""
        r, alpha, s, beta = self._unpack()
        growth = np.log1p(horizon / (beta + age))
        # (1 − ((β+T)/(β+T+t))^(s−1)) / (s − 1), which tends to ln((β+T+t)/(β+T)) at s = 1.
        ratio = growth if abs(s - 1.0) < 1e-12 else -np.expm1(-(s - 1.0) * growth) / (s - 1.0)
        rate = (r + x) * (beta + age) / (alpha + age)
        return rate * ratio

    def probability_of_n_purchases(self, t: float, n: Any) -> np.ndarray:
        """Probability that a new customer makes exactly ``n`` repeat purchases in the
        first ``t`` periods: alive through t with a negative-binomial count, plus dead at
        some τ < t having made n purchases before (an integral over τ, taken adaptively;
        Fader & Hardie's note 012 gives the same quantity through 2F1 differences)."""
        horizon = as_horizon(t)
        r, alpha, s, beta = self._unpack()
        count = as_counts("n", n)
        # Imported here: scipy.stats is slow to import, which every winback command
        # would pay (the score imports this module).
        from scipy.stats import nbinom

        def dying_at(tau: float) -> np.ndarray:
            survival = np.exp(np.log(s) + s * np.log(beta) - (s + 1.0) * np.log(beta + tau))
            return np.asarray(nbinom.pmf(count, r, alpha / (alpha + tau)) * survival)

        alive = nbinom.pmf(count, r, alpha / (alpha + horizon)) * (beta / (beta + horizon)) ** s
        if horizon == 0:
            return np.asarray(alive)
        dead, _ = quad_vec(dying_at, 0.0, horizon, epsabs=1e-13, epsrel=1e-10)
        return np.asarray(alive + np.asarray(dead))
