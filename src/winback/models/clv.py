"""Customer lifetime value over a horizon: the purchases a buy-till-you-die model expects
month by month, times the spend the Gamma-Gamma model expects, discounted monthly.

    CLV = Σ_{i=1..H} (E[X(i months)] − E[X(i−1 months)]) · E[M] / (1 + d)^i

with E[X(τ)] the customer's expected purchases in the next τ (conditional on their own
history, so a customer who is probably dead is worth little) and d the monthly discount
rate. This is the value that decides whether a win-back message is worth its cost.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from winback.models._base import PurchaseModel
from winback.models._data import as_rfm
from winback.models.errors import ModelInputError
from winback.models.gammagamma import GammaGamma
from winback.models.summary import DAYS_PER_UNIT

DAYS_PER_MONTH = 365.25 / 12


def clv(
    model: PurchaseModel,
    spend_model: GammaGamma,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    *,
    time_unit: Literal["days", "weeks"] = "weeks",
    horizon_months: int = 12,
    monthly_discount_rate: float = 0.01,
) -> np.ndarray:
    """Discounted value of each customer's purchases over the next ``horizon_months``,
    in the currency of ``monetary_value``. ``time_unit`` is the unit the purchase model
    was fitted in (the models.time_unit of the workspace)."""
    if time_unit not in DAYS_PER_UNIT:
        raise ModelInputError(f"time_unit {time_unit!r}: use 'days' or 'weeks'")
    if not (isinstance(horizon_months, int) and horizon_months >= 1):
        raise ModelInputError(f"horizon_months = {horizon_months!r}: must be a whole number >= 1")
    if not 0 <= monthly_discount_rate < 1:
        raise ModelInputError(
            f"monthly_discount_rate = {monthly_discount_rate}: must be in [0, 1), e.g. 0.01"
        )
    spend = spend_model.expected_spend(frequency, monetary_value)
    x, t, age = as_rfm(frequency, recency, T)
    alive = model.p_alive(x, t, age)
    month = DAYS_PER_MONTH / DAYS_PER_UNIT[time_unit]
    value = np.zeros(spend.shape)
    before = np.zeros(spend.shape)
    for i in range(1, horizon_months + 1):
        upto = model._expected_if_alive(i * month, x, age)
        value += (upto - before) / (1.0 + monthly_discount_rate) ** i
        before = upto
    return np.asarray(value * alive * spend)
