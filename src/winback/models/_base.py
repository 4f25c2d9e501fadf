"""What the three models share: parameters by name (rebuilt from a stored dict or set by
a fit), the "not fitted" guard, and for the two purchase models the whole fit, from the
customer arrays to the parameters in the data's own time unit."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np

from winback.models._data import Patterns, as_rfm, as_weights, condense, dot
from winback.models._optimize import Objective, maximize
from winback.models.errors import ModelFitError, ModelInputError

MIN_CUSTOMERS = 10


class Model:
    """A model with named parameters. ``Model(params)`` rebuilds a fitted model from
    stored parameters; ``fit`` (in each model) estimates them."""

    kind: ClassVar[str]
    label: ClassVar[str]
    names: ClassVar[tuple[str, ...]]
    # The parameters measured in the data's unit (time or currency): the fit runs on
    # data rescaled to numbers near 1, and these are divided by the scale afterwards.
    unit_names: ClassVar[tuple[str, ...]]

    def __init__(self, params: dict[str, float] | None = None) -> None:
        self.params: dict[str, float] = {}
        self.log_likelihood: float | None = None
        self.customers = 0.0
        if params is not None:
            missing = [name for name in self.names if name not in params]
            if missing:
                raise ModelInputError(f"{self.label} parameters: missing {', '.join(missing)}")
            self.params = {name: float(params[name]) for name in self.names}

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items()) or "not fitted"
        return f"{type(self).__name__}({shown})"

    def _unpack(self) -> tuple[float, ...]:
        """The parameters in the order of ``names``; raises when the model is not fitted."""
        if not self.params:
            raise ModelFitError("the model is not fitted: call fit() first")
        return tuple(self.params[name] for name in self.names)

    def _set_fit(
        self, theta: np.ndarray, scale: float, log_likelihood: float, customers: float
    ) -> None:
        """Keep the result of ``maximize`` on data rescaled by ``scale``."""
        self.params = {
            name: float(value) / (scale if name in self.unit_names else 1.0)
            for name, value in zip(self.names, np.exp(theta), strict=True)
        }
        self.log_likelihood = float(log_likelihood)
        self.customers = customers


class PurchaseModel(Model, ABC):
    """A buy-till-you-die model of purchase counts (BG/NBD, Pareto/NBD), fitted on
    (frequency, recency, T); what ``clv`` needs from one."""

    @staticmethod
    @abstractmethod
    def _objective(patterns: Patterns) -> Objective:
        """The negative mean log-likelihood on ``patterns`` and its gradient."""

    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None) -> Self:
        """Fit on one row per customer (or per pattern, with ``weights`` the number of
        customers sharing it). Raises ``ModelFitError`` when the base cannot be fitted."""
        x, t, age = as_rfm(frequency, recency, T)
        w = as_weights(weights, x.size)
        scale = time_scale(w, age)
        patterns = condense(x, t, age, w, scale)
        check_fittable(patterns)
        theta, log_likelihood = maximize(
            self._objective, patterns, np.zeros(len(self.names)), self.names
        )
        # The likelihood in the data's own time unit: each customer's density of purchase
        # times gains a factor scale^x from the change of unit.
        log_likelihood += np.log(scale) * dot(patterns.weight, patterns.x)
        self._set_fit(theta, scale, log_likelihood, patterns.customers)
        return self

    @abstractmethod
    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still alive at the end of the observation."""

    def expected_purchases(self, t: float, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases of each customer in the next ``t`` periods: the
        purchases expected of them if still alive, times the probability that they are."""
        x, recent, age = as_rfm(frequency, recency, T)
        return np.asarray(
            self._expected_if_alive(as_horizon(t), x, age) * self.p_alive(x, recent, age)
        )

    @abstractmethod
    def _expected_if_alive(self, horizon: float, x: np.ndarray, age: np.ndarray) -> np.ndarray:
        """Expected purchases in the next ``horizon`` periods of customers still alive
        (checked arrays); ``clv`` multiplies it by P(alive), computed once."""


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


def time_scale(weights: np.ndarray, T: np.ndarray) -> float:
    """The factor that brings the mean customer age to 1, so the optimiser works on
    numbers near 1 whatever the time unit (days or weeks); 1 when no time has been
    observed (``check_fittable`` says so)."""
    total = dot(weights, T)
    return float(weights.sum()) / total if total > 0 else 1.0


def as_horizon(t: float) -> float:
    """A prediction horizon: a finite number of periods >= 0."""
    horizon = float(t)
    if not horizon >= 0 or not np.isfinite(horizon):
        raise ModelInputError(f"t = {t}: the horizon must be a finite number of periods >= 0")
    return horizon
