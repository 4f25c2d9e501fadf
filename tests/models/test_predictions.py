"""What the fitted models say about customers, checked against the truth of simulated
bases, against each other, and against lifetimes on CDNOW."""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp
import numpy as np
import pytest
from scipy.special import hyp2f1

from tests.models import cdnow
from winback.models import BetaGeo, ParetoNBD, simulate_bgnbd, simulate_pareto
from winback.models._base import PurchaseModel
from winback.models.simulate import Simulated

BGNBD = {"r": 0.6, "alpha": 8.0, "a": 0.9, "b": 3.0}
PARETO = {"r": 0.6, "alpha": 8.0, "s": 0.7, "beta": 20.0}
HORIZON = 26.0


@pytest.fixture(scope="module")
def ages() -> np.ndarray:
    return np.random.default_rng(5).integers(7, 730, 40_000) / 7.0


@pytest.mark.parametrize(
    ("model_class", "simulate", "truth"),
    [(BetaGeo, simulate_bgnbd, BGNBD), (ParetoNBD, simulate_pareto, PARETO)],
    ids=["bgnbd", "pareto"],
)
def test_a_simulated_base_is_described_truthfully(
    model_class: type[PurchaseModel],
    simulate: Callable[..., Simulated],
    truth: dict[str, float],
    ages: np.ndarray,
) -> None:
    base = simulate(truth, ages, horizon=HORIZON, seed=11)
    model = model_class().fit(base.frequency, base.recency, base.T)
    for name, value in truth.items():
        assert model.params[name] == pytest.approx(value, rel=0.15), name
    alive = model.p_alive(base.frequency, base.recency, base.T)
    assert ((alive >= 0) & (alive <= 1)).all()
    # Calibrated: among customers given about 30 % (or 80 %) alive, about that many are.
    for low, high in ((0.2, 0.4), (0.7, 0.9)):
        band = (alive >= low) & (alive < high)
        assert band.sum() > 500
        assert base.alive[band].mean() == pytest.approx(alive[band].mean(), abs=0.04)
    expected = model.expected_purchases(HORIZON, base.frequency, base.recency, base.T)
    assert expected.sum() == pytest.approx(base.future.sum(), rel=0.05)
    heavy = base.frequency >= 5
    assert expected[heavy].sum() == pytest.approx(base.future[heavy].sum(), rel=0.08)


@pytest.mark.parametrize("model", [BetaGeo(BGNBD), ParetoNBD(PARETO)], ids=["bgnbd", "pareto"])
def test_purchase_distribution_of_a_new_customer(model: BetaGeo | ParetoNBD) -> None:
    n = np.arange(400)
    probability = model.probability_of_n_purchases(HORIZON, n)
    assert (probability >= 0).all()
    assert probability.sum() == pytest.approx(1.0, abs=1e-9)
    # Its mean is the expected purchases of a customer seen for no time at all.
    newcomer = model.expected_purchases(HORIZON, [0], [0], [0])[0]
    assert (n * probability).sum() == pytest.approx(newcomer, rel=1e-6)


def test_bgnbd_mean_purchases_match_the_closed_form() -> None:
    r, alpha, a, b = BGNBD.values()
    z = HORIZON / (alpha + HORIZON)
    closed = (
        (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + HORIZON)) ** r * hyp2f1(r, b, a + b - 1, z))
    )
    model = BetaGeo(BGNBD)
    assert model.expected_purchases(HORIZON, [0], [0], [0])[0] == pytest.approx(closed, rel=1e-10)


def test_pareto_mean_purchases_match_the_closed_form() -> None:
    r, alpha, s, beta = PARETO.values()
    closed = r * beta / (alpha * (s - 1)) * (1 - (beta / (beta + HORIZON)) ** (s - 1))
    model = ParetoNBD(PARETO)
    assert model.expected_purchases(HORIZON, [0], [0], [0])[0] == pytest.approx(closed, rel=1e-10)


def test_customers_who_went_quiet_are_less_alive() -> None:
    model = BetaGeo(BGNBD)
    # Same purchases, the last one longer and longer ago.
    alive = model.p_alive([4, 4, 4, 4], [40, 30, 20, 10], [40, 40, 40, 40])
    assert (np.diff(alive) < 0).all()
    assert model.p_alive([0], [0], [40])[0] == 1.0
    pareto = ParetoNBD(PARETO).p_alive(
        [4, 4, 4, 4, 0, 0], [40, 30, 20, 10, 0, 0], [40] * 4 + [10, 40]
    )
    assert (np.diff(pareto[:4]) < 0).all()
    assert pareto[4] > pareto[5]


def test_cdnow_predictions_agree_with_lifetimes() -> None:
    """lifetimes 0.11.3 with the same parameters gives, for CDNOW customer 1 (x = 2,
    t_x = 30.43, T = 38.86): BG/NBD P(alive) 0.726601 and 1.225887 purchases in 39
    weeks; Pareto/NBD 0.869128 and 1.455087."""
    paper = cdnow.published_summary()[:1]
    x, t, T = paper["x"], paper["t_x"], paper["T"]
    bgnbd = BetaGeo({"r": 0.2425945, "alpha": 4.4136, "a": 0.79293, "b": 2.4258})
    assert bgnbd.p_alive(x, t, T)[0] == pytest.approx(0.726601, abs=2e-6)
    assert bgnbd.expected_purchases(39, x, t, T)[0] == pytest.approx(1.225887, abs=2e-6)
    pareto = ParetoNBD({"r": 0.5533, "alpha": 10.58, "s": 0.6062, "beta": 11.67})
    assert pareto.p_alive(x, t, T)[0] == pytest.approx(0.869128, abs=2e-5)
    assert pareto.expected_purchases(39, x, t, T)[0] == pytest.approx(1.455087, abs=5e-5)


def test_heavy_buyers_match_the_textbook_formula_in_high_precision() -> None:
    """Fader & Hardie's "#NUM!" note: the paper's form of E[Y(t)] overflows for heavy
    buyers in double precision; the transformed form gives the same numbers."""
    mp.mp.dps = 50
    r, alpha, a, b = (mp.mpf(v) for v in BGNBD.values())
    model = BetaGeo(BGNBD)
    for x, t, T in ((50, 40.0, 52.0), (200, 51.0, 52.0), (1000, 51.5, 52.0)):
        z = HORIZON / (alpha + T + HORIZON)
        bracket = 1 - ((alpha + T) / (alpha + T + HORIZON)) ** (r + x) * mp.hyp2f1(
            r + x, b + x, a + b + x - 1, z
        )
        dead = a / (b + x - 1) * ((alpha + T) / (alpha + t)) ** (r + x)
        textbook = (a + b + x - 1) / (a - 1) * bracket / (1 + dead)
        ours = model.expected_purchases(HORIZON, [x], [t], [T])[0]
        assert ours == pytest.approx(float(textbook), rel=1e-9)


def test_pandas_columns_are_accepted() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [0, 2, 5], "t": [0.0, 10.0, 30.0], "T": [40.0, 40.0, 40.0]})
    alive = BetaGeo(BGNBD).p_alive(frame["x"], frame["t"], frame["T"])
    assert isinstance(alive, np.ndarray) and alive.shape == (3,)
