"""Speed and accuracy of winback.models against lifetimes, on synthetic customers drawn
with known parameters (purchase times unrounded).

    .venv/bin/python bench/models.py               # everything (several minutes)
    .venv/bin/python bench/models.py --no-lifetimes

lifetimes 0.11.3 needs old pins, so it runs in its own virtualenv, created under
bench/out/ on first use (pip install lifetimes==0.11.3 "pandas<3" "setuptools<82"); when
that install fails the comparison is skipped with a line saying so. Targets (issue 7):
BG/NBD fit >= 80x faster than lifetimes on 1,000,000 customers, Pareto/NBD >= 100x
faster (lifetimes on 100,000: it takes minutes on a million), parameters within 1 % of
the true ones, P(alive) for 1,000,000 customers < 1 s, summary of 10,000,000
transactions < 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from winback.models import (
    BetaGeo,
    ParetoNBD,
    simulate_bgnbd,
    simulate_pareto,
    summary_from_transactions,
)

OUT = Path(__file__).resolve().parent / "out"
VENV = OUT / "lifetimes-venv"
PINS = ["lifetimes==0.11.3", "pandas<3", "setuptools<82"]
BGNBD = {"r": 0.75, "alpha": 5.0, "a": 0.8, "b": 4.0}
PARETO = {"r": 0.75, "alpha": 5.0, "s": 0.8, "beta": 12.0}

LIFETIMES = """
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
task, path = sys.argv[1], sys.argv[2]
data = np.load(path)
if task == "summary":
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data
    frame = pd.DataFrame({"customer": data["customer"], "date": data["when"],
                          "amount": data["amount"]})
    start = time.perf_counter()
    summary_data_from_transaction_data(frame, "customer", "date", monetary_value_col="amount",
                                       observation_period_end=pd.Timestamp(str(data["end"])))
    print(json.dumps({"seconds": time.perf_counter() - start, "params": {}}))
else:
    from lifetimes import BetaGeoFitter, ParetoNBDFitter
    fitter = BetaGeoFitter() if task == "bgnbd" else ParetoNBDFitter()
    start = time.perf_counter()
    fitter.fit(data["frequency"], data["recency"], data["T"])
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "params": fitter.params_.to_dict()}))
"""


def lifetimes_python() -> Path | None:
    """The benchmark-only virtualenv with lifetimes, created on first use."""
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import lifetimes"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {VENV} with {' '.join(PINS)} ...", flush=True)
    steps = [
        ["python3", "-m", "venv", str(VENV)],
        [str(python), "-m", "pip", "install", "--quiet", *PINS],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True)
        if result.returncode != 0:
            print(f"lifetimes comparison skipped: `{' '.join(step)}` failed:")
            print(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "")
            return None
    return python


def run_lifetimes(python: Path | None, task: str, **arrays: Any) -> dict[str, Any] | None:
    if python is None:
        return None
    path = OUT / f"{task}.npz"
    np.savez(path, **arrays)
    result = subprocess.run(
        [str(python), "-c", LIFETIMES, task, str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        print(f"lifetimes {task} failed: {result.stderr.strip()[-500:]}")
        return None
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def best_of(runs: int, action: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        value = action()
        best = min(best, time.perf_counter() - start)
    return best, value


def timing_row(task: str, seconds: float, theirs: dict[str, Any] | None) -> list[str]:
    """One line of the final table: our time, and lifetimes' time and speed-up if run,
    with the load average when the line was measured (timings on a shared machine are
    only comparable at a similar load)."""
    load = f"{os.getloadavg()[0]:.1f}"
    if theirs is None:
        return [task, f"{seconds:.3f}", "-", "-", load]
    their_seconds = theirs["seconds"]
    speed_up = f"{their_seconds / seconds:.0f}x"
    return [task, f"{seconds:.3f}", f"{their_seconds:.2f}", speed_up, load]


def errors(params: dict[str, float], truth: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g} ({100 * (v / truth[k] - 1):+.2f}%)" for k, v in params.items())


def ages(size: int, seed: int) -> np.ndarray:
    """Customer ages in weeks: first purchases on whole days over three years."""
    return np.random.default_rng(seed).integers(7, 3 * 365 + 1, size) / 7.0


def fit_row(
    rows: list[list[str]],
    name: str,
    model_class: type[BetaGeo] | type[ParetoNBD],
    simulate: Callable[..., Any],
    truth: dict[str, float],
    size: int,
    python: Path | None,
) -> None:
    base = simulate(truth, ages(size, 1), seed=1)
    seconds, model = best_of(3, lambda: model_class().fit(base.frequency, base.recency, base.T))
    theirs = run_lifetimes(
        python, model_class.kind, frequency=base.frequency, recency=base.recency, T=base.T
    )
    rows.append(timing_row(f"{name} fit, {size:,} customers", seconds, theirs))
    print(f"{name} {size:,}: ours      {errors(model.params, truth)}")
    if theirs:
        print(f"{name} {size:,}: lifetimes {errors(theirs['params'], truth)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-lifetimes", action="store_true", help="time winback only")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--pareto-lifetimes-customers", type=int, default=100_000)
    parser.add_argument("--transactions", type=int, default=10_000_000)
    options = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    python = None if options.no_lifetimes else lifetimes_python()
    rows: list[list[str]] = []
    n = options.customers
    fit_row(rows, "BG/NBD", BetaGeo, simulate_bgnbd, BGNBD, n, python)
    small = options.pareto_lifetimes_customers
    fit_row(rows, "Pareto/NBD", ParetoNBD, simulate_pareto, PARETO, small, python)
    fit_row(rows, "Pareto/NBD", ParetoNBD, simulate_pareto, PARETO, n, None)

    base = simulate_bgnbd(BGNBD, ages(n, 2), seed=2)
    for model in (BetaGeo(BGNBD), ParetoNBD(PARETO)):
        seconds, _ = best_of(3, partial(model.p_alive, base.frequency, base.recency, base.T))
        rows.append(timing_row(f"{type(model).__name__}.p_alive, {n:,} customers", seconds, None))

    rng = np.random.default_rng(3)
    count = options.transactions
    customer = rng.integers(0, count // 10, count)
    when = np.datetime64("2023-01-01T00:00:00") + rng.integers(0, 730 * 86400, count).astype(
        "timedelta64[s]"
    )
    amount = np.round(rng.gamma(2.0, 20.0, count), 2)
    end = np.datetime64("2024-12-31")
    seconds, _ = best_of(
        3, lambda: summary_from_transactions(customer, when, amount, observation_end=end)
    )
    theirs = run_lifetimes(python, "summary", customer=customer, when=when, amount=amount, end=end)
    rows.append(timing_row(f"summary of {count:,} transactions", seconds, theirs))

    header = ["task", "winback (s)", "lifetimes (s)", "speed-up", "load"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
