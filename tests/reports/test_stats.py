"""The lift's statistics against published worked examples and SciPy."""

from __future__ import annotations

import pytest
from scipy import stats

from winback.reports.stats import (
    amount_sentence,
    mean_lift,
    proportion_lift,
    rate_sentence,
)

# Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10 (score interval
# without continuity correction), examples (a) to (h).
NEWCOMBE = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "interval"), NEWCOMBE)
def test_newcombe_interval_matches_the_paper(
    counts: tuple[int, int, int, int], interval: tuple[float, float]
) -> None:
    lift = proportion_lift(*counts)
    assert lift.ci_low == pytest.approx(interval[0], abs=5e-5)
    assert lift.ci_high == pytest.approx(interval[1], abs=5e-5)
    assert lift.difference == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert lift.significant == (interval[0] > 0 or interval[1] < 0)


def test_welch_interval_matches_scipy() -> None:
    treated = [0, 0, 0, 25.5, 0, 80, 0, 0, 12, 0, 0, 140, 0, 0, 33]
    holdout: list[float] = [0, 0, 10, 0, 0, 0, 45, 0]
    lift = mean_lift(treated, holdout)
    expected = stats.ttest_ind(treated, holdout, equal_var=False).confidence_interval(0.95)
    assert lift.ci_low == pytest.approx(expected.low)
    assert lift.ci_high == pytest.approx(expected.high)
    assert lift.difference is not None
    assert lift.relative == pytest.approx(lift.difference / (55 / 8))


def test_sentences_a_marketer_can_read() -> None:
    works = proportion_lift(300, 1000, 200, 1000)
    assert works.significant
    assert rate_sentence(works).startswith("+10.0 points [")
    assert rate_sentence(works).endswith("the journey works")
    noise = proportion_lift(31, 1000, 28, 1000)
    assert not noise.significant
    sentence = rate_sentence(noise)
    assert "not significant yet: about" in sentence and "more contacts needed" in sentence
    # The estimate of contacts needed is of the right size: a 0.3 point difference at a 3 %
    # base rate needs some hundred thousand contacts, far more than the 2,000 we have.
    assert noise.more_contacts_needed is not None and noise.more_contacts_needed > 50_000
    worse = proportion_lift(100, 1000, 200, 1000)
    assert "does worse" in rate_sentence(worse)
    assert "no holdout" in rate_sentence(proportion_lift(5, 10, 0, 0))
    money = mean_lift([10.0] * 50 + [0.0] * 50, [0.0] * 100)
    assert "EUR per contact" in amount_sentence(money, "EUR")


def test_the_sentence_in_french_for_french_pages() -> None:
    works = rate_sentence(proportion_lift(300, 1000, 200, 1000), "fr")
    assert works.startswith("+10,0 points [") and works.endswith("le parcours fonctionne")
    noise = rate_sentence(proportion_lift(31, 1000, 28, 1000), "fr")
    assert "il faudrait environ" in noise and "\u202f" in noise
    assert "par contact" in amount_sentence(
        mean_lift([10.0] * 5 + [0.0] * 5, [0.0] * 10), "EUR", "fr"
    )
