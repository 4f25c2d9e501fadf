"""Maximum likelihood for the models, fast on large bases.

Every model hands over a function giving the negative mean log-likelihood and its
gradient in log-parameters (so every parameter stays positive without bounds). On a large
base the optimum is first found on a weighted sample of about ``SAMPLE_ROWS`` patterns;
its Hessian (finite differences of the exact gradient, cheap on the sample) then seeds
BFGS on every pattern, which lands on the full optimum in a handful of evaluations
instead of the few dozen a cold start needs. The result is the optimum of the full
likelihood: the sample only chooses where the search starts.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from winback.models._data import Patterns
from winback.models.errors import ModelFitError

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

SAMPLE_ROWS = 20_000
# |log parameter| beyond this means a parameter ran off to 0 or infinity (1e-13 .. 1e13).
EDGE = 30.0
GTOL = 1e-7


def _hessian(objective: Objective, theta: np.ndarray, step: float = 1e-4) -> np.ndarray:
    columns = []
    for i in range(theta.size):
        shift = np.zeros_like(theta)
        shift[i] = step
        columns.append((objective(theta + shift)[1] - objective(theta - shift)[1]) / (2 * step))
    hessian = np.array(columns)
    return (hessian + hessian.T) / 2


def _bfgs(
    objective: Objective, theta: np.ndarray, inverse_hessian: np.ndarray | None
) -> tuple[np.ndarray, float]:
    options: dict[str, object] = {"gtol": GTOL, "maxiter": 500}
    if inverse_hessian is not None:
        options["hess_inv0"] = inverse_hessian
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        result = minimize(objective, theta, jac=True, method="BFGS", options=options)
    gradient = np.max(np.abs(result.jac)) if np.all(np.isfinite(result.jac)) else np.inf
    # BFGS reports "precision loss" once the gradient is at rounding level; that is an
    # optimum. Only a gradient still far from zero is a failure.
    if not np.all(np.isfinite(result.x)) or not gradient < 1e-5:
        raise ModelFitError(
            f"the maximum likelihood search did not converge ({result.message}; "
            f"largest gradient {gradient:.3g}); the data may not carry enough information "
            "for this model"
        )
    return np.asarray(result.x), float(result.fun)


def maximize(
    build: Callable[[Patterns], Objective],
    patterns: Patterns,
    start: np.ndarray,
    names: tuple[str, ...],
) -> tuple[np.ndarray, float]:
    """The log-parameters that maximise the likelihood built by ``build`` on
    ``patterns``, and the total log-likelihood there. Raises ``ModelFitError`` when the
    search fails or a parameter runs to the edge of its range."""
    theta = np.asarray(start, dtype=np.float64)
    inverse_hessian = None
    if patterns.rows > 2 * SAMPLE_ROWS:
        sample = build(patterns.sample(SAMPLE_ROWS))
        theta, _ = _bfgs(sample, theta, None)
        values, vectors = np.linalg.eigh(_hessian(sample, theta))
        # A sample Hessian that is not clearly positive definite seeds nothing.
        if values.min() > 1e-8 * values.max() > 0:
            inverse_hessian = (vectors / values) @ vectors.T
            inverse_hessian = (inverse_hessian + inverse_hessian.T) / 2
    full = build(patterns)
    theta, value = _bfgs(full, theta, inverse_hessian)
    edge = np.abs(theta) > EDGE
    if edge.any():
        name = names[int(np.argmax(edge))]
        towards = "infinity" if theta[int(np.argmax(edge))] > 0 else "zero"
        raise ModelFitError(
            f"degenerate fit: parameter {name} runs to {towards}; the base does not pin "
            "this model down (too few customers or repeat purchases, or a base where "
            "everyone behaves the same)"
        )
    return theta, -value * patterns.customers
