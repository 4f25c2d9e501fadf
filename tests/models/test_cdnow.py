"""The fits reproduce the published CDNOW estimates to the precision they were published
with. Log-likelihoods are totals over the 2,357 customers in weeks (lifetimes reports a
per-customer mean on rescaled time, which is not the paper's figure)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.models import cdnow
from winback.models import BetaGeo, GammaGamma, ParetoNBD, Summary


@pytest.fixture(scope="module")
def summary() -> Summary:
    return cdnow.summary()


def assert_published(params: dict[str, float], published: dict[str, float]) -> None:
    """Each estimate rounds to the published figure (half a unit of its last digit)."""
    for name, figure in published.items():
        decimals = len(str(figure).split(".")[1])
        assert params[name] == pytest.approx(figure, abs=0.5 * 10**-decimals), name


def test_summary_from_the_transactions_is_the_papers_summary(summary: Summary) -> None:
    paper = cdnow.published_summary()
    assert summary.customer.tolist() == paper["ID"].astype(int).tolist()
    assert summary.frequency.tolist() == paper["x"].tolist()
    # The paper's file rounds weeks to two decimals and spend to the cent.
    assert np.abs(summary.recency - paper["t_x"]).max() <= 0.005
    assert np.abs(summary.T - paper["T"]).max() <= 0.005
    assert np.abs(summary.monetary_value - paper["zbar"]).max() <= 0.005 + 1e-9


def test_bgnbd_fit_gives_the_published_estimates(summary: Summary) -> None:
    model = BetaGeo().fit(summary.frequency, summary.recency, summary.T)
    assert_published(model.params, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert model.customers == 2357


def test_bgnbd_fit_on_the_papers_rounded_file_agrees() -> None:
    paper = cdnow.published_summary()
    model = BetaGeo().fit(paper["x"], paper["t_x"], paper["T"])
    assert_published(model.params, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    per_customer = model.log_likelihood_of(paper["x"], paper["t_x"], paper["T"])
    assert per_customer.sum() == pytest.approx(model.log_likelihood, abs=1e-6)


def test_pareto_fit_gives_the_published_estimates(summary: Summary) -> None:
    model = ParetoNBD().fit(summary.frequency, summary.recency, summary.T)
    assert_published(model.params, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669})
    assert model.log_likelihood == pytest.approx(-9595.0, abs=0.05)
    per_customer = model.log_likelihood_of(summary.frequency, summary.recency, summary.T)
    assert per_customer.sum() == pytest.approx(model.log_likelihood, abs=1e-6)


def test_gamma_gamma_fit_gives_the_published_estimates(summary: Summary) -> None:
    # Exact averages from the transactions: the paper's file rounds them to the cent,
    # which alone moves γ to 15.448.
    model = GammaGamma().fit(summary.frequency, summary.monetary_value)
    assert_published(model.params, {"p": 6.25, "q": 3.74, "gamma": 15.44})
    assert model.customers == 946
    assert model.left_out == 2357 - 946


def test_fitting_patterns_with_weights_equals_fitting_customers(summary: Summary) -> None:
    rows = np.stack([summary.frequency, summary.recency, summary.T], axis=1)
    patterns, counts = np.unique(rows, axis=0, return_counts=True)
    assert len(patterns) < len(rows) / 2
    by_customer = BetaGeo().fit(summary.frequency, summary.recency, summary.T)
    frequency, recency, age = patterns.T
    by_pattern = BetaGeo().fit(frequency, recency, age, weights=counts)
    for name, value in by_customer.params.items():
        assert by_pattern.params[name] == pytest.approx(value, rel=1e-6)
    assert by_pattern.log_likelihood == pytest.approx(by_customer.log_likelihood, abs=1e-6)


def test_time_unit_changes_alpha_and_not_the_fit(summary: Summary) -> None:
    weeks = BetaGeo().fit(summary.frequency, summary.recency, summary.T)
    days = BetaGeo().fit(summary.frequency, summary.recency * 7, summary.T * 7)
    assert days.params["alpha"] == pytest.approx(7 * weeks.params["alpha"], rel=1e-6)
    assert days.params["b"] == pytest.approx(weeks.params["b"], rel=1e-6)
    in_days = days.p_alive(summary.frequency, summary.recency * 7, summary.T * 7)
    in_weeks = weeks.p_alive(summary.frequency, summary.recency, summary.T)
    np.testing.assert_allclose(in_days, in_weeks, rtol=1e-6)
