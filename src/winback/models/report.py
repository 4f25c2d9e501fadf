"""``winback models report``: the stored fit, and the check of Fader, Hardie & Lee (2005,
figure 5) on the workspace's own history: fit on a calibration period, then compare, per
number of repeat purchases in calibration, the purchases the model expects in the
holdout period with those the customers actually made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine

from winback.clock import to_db
from winback.config import ModelsSection
from winback.errors import WinbackError
from winback.models.apply import fit_summary, latest_fit, purchases
from winback.models.errors import ModelFitError
from winback.models.summary import DAYS_PER_UNIT, summary_from_transactions

# Frequency classes of the table: 0 .. TOP-1 repeat purchases, then TOP or more.
TOP = 7


def _day(moment: datetime) -> int:
    return int(np.datetime64(to_db(moment), "D").astype(np.int64))


def models_report(
    engine: Engine, settings: ModelsSection, now: datetime, holdout_from: datetime | None = None
) -> dict[str, Any]:
    """The latest stored fit and the calibration table. The history up to ``now`` is
    split at ``holdout_from`` (default: halfway between the first purchase and ``now``,
    as the paper's 39 + 39 weeks); the model of ``settings.kind`` is fitted on the
    purchases before it, and each frequency class gets its customers' mean actual and
    expected repeat purchases in the holdout."""
    with engine.connect() as connection:
        stored = latest_fit(connection)
        ids, when, amount = purchases(connection, now)
    report: dict[str, Any] = {"fit": stored.as_dict() if stored else None, "calibration": None}
    if ids.size == 0:
        return report
    days = (when - np.datetime64(0, "us")) // np.timedelta64(1, "D")
    now_day = _day(now)
    if holdout_from is None:
        split = int(days.min()) + (now_day - int(days.min()) + 1) // 2
    else:
        split = _day(holdout_from)
    if not int(days.min()) < split <= now_day:
        raise WinbackError(
            f"--holdout-from {np.datetime64(split, 'D')}: the holdout must start after the "
            f"first purchase ({np.datetime64(int(days.min()), 'D')}) and by --now "
            f"({np.datetime64(now_day, 'D')})"
        )
    unit = DAYS_PER_UNIT[settings.time_unit]
    summary = summary_from_transactions(
        ids,
        when,
        amount,
        observation_end=np.datetime64(split - 1, "D"),
        time_unit=settings.time_unit,
    )
    fit = fit_summary(summary, settings.kind, settings.time_unit, now)
    if fit.error:
        raise ModelFitError(f"calibration fit before {np.datetime64(split, 'D')}: {fit.error}")
    # Distinct purchase days in the holdout of the customers seen in calibration.
    later = days >= split
    pairs = np.unique(ids[later] * (now_day + 1) + days[later])
    buyer = pairs // (now_day + 1)
    position = np.searchsorted(summary.customer, buyer)
    position = np.minimum(position, summary.customer.size - 1)
    known = summary.customer[position] == buyer
    actual = np.bincount(position[known], minlength=summary.customer.size).astype(float)
    length = (now_day - (split - 1)) / unit
    expected = fit.purchase_model().expected_purchases(
        length, summary.frequency, summary.recency, summary.T
    )
    classes = np.minimum(summary.frequency, TOP).astype(int)
    rows = []
    for k in range(TOP + 1):
        members = classes == k
        count = int(members.sum())
        rows.append(
            {
                "frequency": f"{k}+" if k == TOP else str(k),
                "customers": count,
                "actual": float(actual[members].mean()) if count else None,
                "expected": float(expected[members].mean()) if count else None,
            }
        )
    report["calibration"] = {
        "holdout_from": str(np.datetime64(split, "D")),
        "until": str(np.datetime64(now_day, "D")),
        "holdout_length": length,
        "time_unit": settings.time_unit,
        "fit": fit.as_dict(),
        "classes": rows,
        "total": {
            "customers": int(summary.customer.size),
            "actual": float(actual.sum()),
            "expected": float(expected.sum()),
        },
    }
    return report
