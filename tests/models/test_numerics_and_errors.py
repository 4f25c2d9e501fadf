"""The hypergeometric series and quadrature against mpmath, the summary on hand-built
logs, CLV, and the errors a user meets."""

from __future__ import annotations

from typing import Any

import mpmath as mp
import numpy as np
import pytest

from winback.models import (
    BetaGeo,
    GammaGamma,
    ModelFitError,
    ModelInputError,
    ParetoNBD,
    clv,
    summary_from_transactions,
)
from winback.models._base import PurchaseModel
from winback.models._hyp2f1 import log_unit_2f1, log_unit_2f1_value


def _log_2f1(q: Any, c: Any, z: Any) -> Any:
    return mp.re(mp.log(mp.hyp2f1(1, q, c, z)))


def _reference(q: float, c: float, z: float) -> list[Any]:
    """ln 2F1(1, q; c; z) and its derivatives in q, c and z, to 30 digits."""
    return [
        _log_2f1(q, c, z),
        mp.diff(lambda v: _log_2f1(v, c, z), q),
        mp.diff(lambda v: _log_2f1(q, v, z), c),
        mp.diff(lambda v: _log_2f1(q, c, v), z, direction=-1),
    ]


@pytest.mark.parametrize("z_range", [(0.0, 0.8), (0.8, 0.99999)], ids=["series", "quadrature"])
def test_unit_2f1_and_its_derivatives_match_mpmath(z_range: tuple[float, float]) -> None:
    mp.mp.dps = 30
    rng = np.random.default_rng(7)
    for _ in range(40):
        q = 10 ** rng.uniform(-1.3, 2.5)
        c = max(q + 10 ** rng.uniform(-1.3, 2.5), 1.06)
        z = 1 - 10 ** rng.uniform(np.log10(1 - z_range[1]), np.log10(1 - z_range[0]))

        expected = _reference(q, c, z)
        got = log_unit_2f1(np.array([q]), np.array([c]), np.array([z]))
        for ours, theirs in zip(got, expected, strict=True):
            assert ours[0] == pytest.approx(float(theirs), rel=1e-10, abs=1e-10), (q, c, z)
        alone = log_unit_2f1_value(np.array([q]), np.array([c]), np.array([z]))
        assert alone[0] == pytest.approx(float(expected[0]), rel=1e-10, abs=1e-10), (q, c, z)


def test_summary_collapses_same_day_purchases_and_ignores_later_ones() -> None:
    day = np.datetime64("2025-01-01")
    log = [
        ("ann", day, 10.0),
        ("ann", day + np.timedelta64(5, "h"), 5.0),  # same day: one purchase of 15
        ("ann", day + 7, 20.0),
        ("ann", day + 21, 40.0),
        ("ann", day + 60, 99.0),  # after the end of the observation
        ("bob", day + 14, 8.0),
        ("cid", day + 60, 1.0),  # first purchase after the end: not a customer yet
    ]
    customer, times, amount = zip(*log, strict=True)
    when = np.array(times, dtype="datetime64[s]")
    summary = summary_from_transactions(
        customer, when, amount, observation_end=day + 28, time_unit="weeks"
    )
    assert summary.customer.tolist() == ["ann", "bob"]
    assert summary.frequency.tolist() == [2, 0]
    assert summary.recency.tolist() == [3.0, 0.0]
    assert summary.T.tolist() == [4.0, 2.0]
    assert summary.monetary_value.tolist() == [30.0, 0.0]
    in_days = summary_from_transactions(
        customer, when, amount, observation_end=day + 28, time_unit="days"
    )
    assert in_days.T.tolist() == [28.0, 14.0]


def test_summary_takes_integer_ids_and_day_numbers() -> None:
    summary = summary_from_transactions(
        [7, 3, 7, 7], [0.0, 2.5, 3.2, 3.9], observation_end=10.0, time_unit="days"
    )
    assert summary.customer.tolist() == [3, 7]
    assert summary.frequency.tolist() == [0, 1]
    assert summary.recency.tolist() == [0.0, 3.0]
    assert summary.T.tolist() == [8.0, 10.0]


def test_clv_is_discounted_expected_purchases_times_spend() -> None:
    model = BetaGeo({"r": 0.6, "alpha": 8.0, "a": 0.9, "b": 3.0})
    spend = GammaGamma({"p": 6.0, "q": 4.0, "gamma": 15.0})
    x, t, T, m = [0, 3, 3], [0, 30, 5], [40, 40, 40], [0, 25.0, 25.0]
    flat = clv(model, spend, x, t, T, m, horizon_months=12, monthly_discount_rate=0.0)
    year = model.expected_purchases(365.25 / 7, x, t, T) * spend.expected_spend(x, m)
    np.testing.assert_allclose(flat, year, rtol=1e-12)
    discounted = clv(model, spend, x, t, T, m, monthly_discount_rate=0.02)
    assert (discounted < flat).all()
    assert flat[1] > flat[2]  # same history, but the second went quiet long ago
    longer = clv(model, spend, x, t, T, m, horizon_months=24)
    assert (longer > discounted).all()


def test_expected_spend_shrinks_toward_the_population_mean() -> None:
    spend = GammaGamma({"p": 6.0, "q": 4.0, "gamma": 15.0})
    mean = 6.0 * 15.0 / 3.0
    few, many = spend.expected_spend([1, 50], [100.0, 100.0])
    assert mean < few < many < 100.0
    assert spend.expected_spend([0], [0.0])[0] == pytest.approx(mean)


@pytest.mark.parametrize("model_class", [BetaGeo, ParetoNBD])
def test_fit_failures_say_what_is_missing(model_class: type[PurchaseModel]) -> None:
    with pytest.raises(ModelFitError, match="at least 10"):
        model_class().fit([1, 0, 2], [3.0, 0.0, 4.0], [5.0, 5.0, 5.0])
    with pytest.raises(ModelFitError, match="no customer has a repeat purchase"):
        model_class().fit(np.zeros(50), np.zeros(50), np.full(50, 20.0))
    with pytest.raises(ModelFitError, match="not fitted"):
        model_class().p_alive([1], [1.0], [2.0])


def test_gamma_gamma_failures_say_what_is_missing() -> None:
    with pytest.raises(ModelFitError, match="positive average spend"):
        GammaGamma().fit([1, 2, 0, 3], [10.0, 0.0, 0.0, 5.0])
    with pytest.raises(ModelFitError, match="same average spend"):
        GammaGamma().fit(np.full(20, 2), np.full(20, 9.99))


def test_bad_inputs_name_the_array_and_the_customer() -> None:
    model = BetaGeo({"r": 0.6, "alpha": 8.0, "a": 0.9, "b": 3.0})
    with pytest.raises(ModelInputError, match=r"recency\[1\] = 50.0 is after T\[1\] = 40.0"):
        model.p_alive([1, 2], [3.0, 50.0], [40.0, 40.0])
    with pytest.raises(ModelInputError, match=r"frequency\[0\] = 1.5"):
        model.p_alive([1.5], [3.0], [40.0])
    with pytest.raises(ModelInputError, match=r"T\[0\] is nan"):
        model.p_alive([1], [3.0], [float("nan")])
    with pytest.raises(ModelInputError, match="one value per customer"):
        model.p_alive([1, 2], [3.0], [40.0])
    with pytest.raises(ModelInputError, match=r"frequency\[0\] = 0"):
        model.p_alive([0], [3.0], [40.0])
