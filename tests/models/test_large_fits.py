"""Fits of bases large enough to run in stages (samples first, then every customer) land
on the maximum of the whole likelihood, and the derivatives the search uses are those of
the likelihood the model reports."""

from __future__ import annotations

import numpy as np
import pytest

from winback.models import BetaGeo, simulate_bgnbd
from winback.models._base import time_scale
from winback.models._data import Patterns, as_weights, condense
from winback.models._optimize import SAMPLE_ROWS
from winback.models.bgnbd import BLOCK, _Objective
from winback.models.simulate import Simulated

TRUTH = {"r": 0.75, "alpha": 5.0, "a": 0.8, "b": 4.0}


@pytest.fixture(scope="module")
def base() -> Simulated:
    # Unrounded purchase times: no two customers share a pattern, so every row counts.
    ages = np.random.default_rng(3).integers(7, 3 * 365 + 1, 150_000) / 7.0
    return simulate_bgnbd(TRUTH, ages, seed=4)


def total_log_likelihood(params: dict[str, float], base: Simulated) -> float:
    return float(BetaGeo(params).log_likelihood_of(base.frequency, base.recency, base.T).sum())


def test_a_staged_fit_is_the_maximum_of_the_whole_likelihood(base: Simulated) -> None:
    assert (base.frequency > 0).sum() > 2 * SAMPLE_ROWS  # large enough for the stages
    model = BetaGeo().fit(base.frequency, base.recency, base.T)
    assert model.log_likelihood == pytest.approx(total_log_likelihood(model.params, base), abs=1e-6)
    # No parameter can move (by 0.1 %, either way) to a higher likelihood, and the slope of
    # the log-likelihood in each log-parameter is nil on the scale of the base.
    step = 1e-3
    for name in model.params:
        lower, upper = (
            total_log_likelihood({**model.params, name: model.params[name] * factor}, base)
            for factor in (np.exp(-step), np.exp(step))
        )
        assert model.log_likelihood is not None
        assert max(lower, upper) < model.log_likelihood
        assert abs(upper - lower) / (2 * step) < 1e-3 * model.customers, name
    for name, value in TRUTH.items():
        assert model.params[name] == pytest.approx(value, rel=0.05), name


@pytest.mark.parametrize("weighted", [False, True], ids=["one-per-row", "weighted"])
def test_gradient_and_hessian_are_the_derivatives_of_the_value(
    base: Simulated, weighted: bool
) -> None:
    weights = np.random.default_rng(5).integers(1, 4, base.frequency.size) if weighted else None
    w = as_weights(weights, base.frequency.size)
    patterns = condense(base.frequency, base.recency, base.T, w, time_scale(w, base.T))
    assert (patterns.x > 0).sum() > 3 * BLOCK  # several blocks of repeat buyers
    objective = _Objective(patterns)
    theta = np.log([0.6, 0.08, 0.9, 3.0])
    _, gradient, hessian = objective.with_hessian(theta)
    step = 1e-5
    for i in range(4):
        shift = np.zeros(4)
        shift[i] = step
        above, below = objective.with_hessian(theta + shift), objective.with_hessian(theta - shift)
        assert (above[0] - below[0]) / (2 * step) == pytest.approx(gradient[i], abs=1e-8)
        assert (above[1] - below[1]) / (2 * step) == pytest.approx(hessian[i], abs=1e-7)
    # Without the value, the same derivatives (the first Newton step of a stage).
    _, same_gradient, same_hessian = objective.with_hessian(theta, value=False)
    assert same_gradient == pytest.approx(gradient, abs=1e-13)
    assert same_hessian == pytest.approx(hessian, abs=1e-13)


def test_unordered_patterns_give_the_same_objective(base: Simulated) -> None:
    """``condense`` puts one-time buyers first; patterns in any other order (as a caller
    building them by hand would pass) give the same likelihood."""
    w = as_weights(None, base.frequency.size)
    ordered = condense(base.frequency, base.recency, base.T, w, time_scale(w, base.T))
    shuffle = np.random.default_rng(6).permutation(ordered.rows)
    mixed = Patterns(*(getattr(ordered, f)[shuffle] for f in ("x", "t", "T", "weight")))
    theta = np.log([0.6, 0.08, 0.9, 3.0])
    for first, second in zip(
        _Objective(ordered).with_hessian(theta), _Objective(mixed).with_hessian(theta), strict=True
    ):
        assert np.asarray(first) == pytest.approx(np.asarray(second), rel=1e-12, abs=1e-14)
