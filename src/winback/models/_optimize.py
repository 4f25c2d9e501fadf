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
MAX_NEWTON_STEPS = 8
# Below this gradient, one more Newton step lands within 1e-6 of the optimum.
NEWTON_FINISH = 1e-4


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


def _refine(full: Objective, sample: Objective, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """From the optimum of a sample to the optimum of every pattern: Newton steps on the
    full likelihood. An objective with an exact Hessian (``with_hessian``) gives it at
    the start; otherwise the sample's Hessian (differences of its exact gradient) stands
    in for it, and each step still gains one or two digits, as the two Hessians differ
    by the sampling error only. The same matrix serves every step: one evaluation of
    the full likelihood per step. A step that does not improve hands over to BFGS."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        exact = getattr(full, "with_hessian", None)
        if exact is not None:
            value, gradient, hessian = exact(theta)
        else:
            value, gradient = full(theta)
            hessian = _hessian(sample, theta)
        try:
            factor = np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            return _bfgs(full, theta, None)
        for _ in range(MAX_NEWTON_STEPS):
            if _largest(gradient) < GTOL:
                return theta, value
            step = np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
            trial = theta - step
            trial_value, trial_gradient = full(trial)
            better = trial_value <= value + 1e-12 * abs(value)
            if not (np.isfinite(trial_value) and better):
                break
            theta, value, gradient = trial, trial_value, trial_gradient
    inverse = np.linalg.inv(hessian)
    return _bfgs(full, theta, (inverse + inverse.T) / 2)


def _newton(objective: Objective, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """Newton's method with the objective's exact Hessian, from a point near the optimum.
    The Hessian is evaluated again only while the gradient falls slowly; once the
    gradient is below ``NEWTON_FINISH`` the last step is taken without another
    evaluation (its error is of the order of the gradient squared) and the value there
    is the quadratic prediction. A step that does not improve hands over to BFGS."""
    hessian_of = objective.with_hessian  # type: ignore[attr-defined]
    best, best_value = theta, np.inf
    factor = None
    previous = np.inf
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for _ in range(MAX_NEWTON_STEPS):
            if factor is None:
                value, gradient, hessian = hessian_of(theta)
            else:
                value, gradient = objective(theta)
            if not (np.isfinite(value) and value <= best_value + 1e-12 * abs(value)):
                break
            best, best_value = theta, value
            largest = _largest(gradient)
            if factor is None or largest > 0.1 * previous:
                if factor is not None:
                    value, gradient, hessian = hessian_of(theta)
                try:
                    factor = np.linalg.cholesky(hessian)
                except np.linalg.LinAlgError:
                    break
            previous = largest
            step = np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
            if largest < NEWTON_FINISH:
                return theta - step, float(value - 0.5 * gradient @ step)
            theta = theta - step
    return _bfgs(objective, best, None)


def _largest(gradient: np.ndarray) -> float:
    return float(np.max(np.abs(gradient))) if np.all(np.isfinite(gradient)) else np.inf


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
    if patterns.rows > 2 * SAMPLE_ROWS and hasattr(build, "with_hessian"):
        # BFGS on a small sample, then Newton on samples ten times larger each time and
        # on every pattern: each stage starts within the sampling error of the next
        # one's optimum, where Newton converges in one or two steps.
        sizes = [SAMPLE_ROWS // 10]
        while 20 * sizes[-1] < patterns.rows:
            sizes.append(10 * sizes[-1])
        first, *larger = patterns.samples(sizes)
        theta, _ = _bfgs(build(first), theta, None)
        for sample in larger:
            theta, _ = _newton(build(sample), theta)
        theta, value = _newton(build(patterns), theta)
    elif patterns.rows > 2 * SAMPLE_ROWS:
        objective = build(patterns.samples([SAMPLE_ROWS])[0])
        theta, _ = _bfgs(objective, theta, None)
        theta, value = _refine(build(patterns), objective, theta)
    else:
        theta, value = _bfgs(build(patterns), theta, None)
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
