"""Customers drawn from the models with known parameters: for checking a fit (does it
find the parameters back? is P(alive) calibrated?), for benchmarks, and for what-if
studies. Purchase times are drawn unrounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from winback.models._data import as_array


@dataclass(frozen=True)
class Simulated:
    """Observed summary, the hidden truth (alive at T), and the purchases each customer
    goes on to make in the ``horizon`` after T."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    alive: np.ndarray
    future: np.ndarray


def _order_statistic(rng: np.random.Generator, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The k-th smallest of n uniforms on (0, 1), for k >= 1."""
    return rng.beta(k, n - k + 1)


def simulate_bgnbd(
    params: dict[str, float], T: Any, horizon: float = 0.0, seed: int | None = None
) -> Simulated:
    """One customer per value of ``T`` (their age at the end of the observation), drawn
    from BG/NBD: λ ~ gamma(r, α), p ~ beta(a, b); each repeat purchase is followed by
    drop-out with probability p."""
    rng = np.random.default_rng(seed)
    age = as_array("T", T)
    n = age.size
    rate = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    p = rng.beta(params["a"], params["b"], n)
    last = rng.geometric(p)  # the repeat purchase after which the customer drops out
    count = rng.poisson(rate * age)
    x = np.minimum(count, last)
    recency = np.zeros(n)
    bought = x > 0
    recency[bought] = age[bought] * _order_statistic(rng, x[bought], count[bought])
    alive = count < last
    future = np.where(alive, np.minimum(rng.poisson(rate * horizon), last - x), 0)
    return Simulated(x.astype(np.float64), recency, age, alive, future.astype(np.float64))


def simulate_pareto(
    params: dict[str, float], T: Any, horizon: float = 0.0, seed: int | None = None
) -> Simulated:
    """One customer per value of ``T``, drawn from Pareto/NBD: λ ~ gamma(r, α),
    μ ~ gamma(s, β), an exponential lifetime of rate μ."""
    rng = np.random.default_rng(seed)
    age = as_array("T", T)
    n = age.size
    rate = rng.gamma(params["r"], 1.0 / params["alpha"], n)
    death = rng.gamma(params["s"], 1.0 / params["beta"], n)
    lifetime = rng.exponential(1.0 / death)
    observed = np.minimum(lifetime, age)
    x = rng.poisson(rate * observed)
    recency = np.zeros(n)
    bought = x > 0
    recency[bought] = observed[bought] * _order_statistic(rng, x[bought], x[bought])
    alive = lifetime > age
    remaining = np.clip(lifetime - age, 0.0, horizon)
    future = rng.poisson(rate * remaining)
    return Simulated(x.astype(np.float64), recency, age, alive, future.astype(np.float64))
