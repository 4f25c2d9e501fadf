"""The CDNOW sample (tests/data/README.md) as the models see it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from winback.models import Summary, summary_from_transactions

DATA = Path(__file__).parent.parent / "data"
CALIBRATION_END = np.datetime64("1997-09-30")


def transactions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer id, day, dollar value) of every transaction in the sample."""
    rows = np.loadtxt(DATA / "cdnow_sample.txt", dtype=str)
    days = np.array([f"{d[:4]}-{d[4:6]}-{d[6:]}" for d in rows[:, 2]], dtype="datetime64[D]")
    return rows[:, 1].astype(np.int64), days, rows[:, 4].astype(np.float64)


def summary() -> Summary:
    """The 39-week calibration summary in weeks, built from the transactions."""
    customer, day, amount = transactions()
    return summary_from_transactions(customer, day, amount, observation_end=CALIBRATION_END)


def published_summary() -> np.ndarray:
    """The summary as distributed with the paper (columns ID, x, t_x, T, zbar)."""
    return np.genfromtxt(DATA / "cdnow_summary.csv", delimiter=",", names=True)
