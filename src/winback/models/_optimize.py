"""Maximum likelihood for the models, fast on large bases.

Every model hands over a function giving the negative mean log-likelihood and its
gradient in log-parameters (so every parameter stays positive without bounds); BG/NBD's
also gives its exact Hessian (``with_hessian``). A cold start (a small base, or the
first sample of a large one) runs SciPy's trust-region Newton method (``trust-exact``)
when the Hessian is exact (about seven evaluations), BFGS otherwise. A large base is
fitted in stages (:func:`_staged`): that search on a sample of ``SAMPLE_ROWS // 10``
customers, then Newton on samples ten times larger each time and at last on every
pattern. Each stage starts within the sampling error of its optimum. With the exact
Hessian one Newton step per sample stage is enough, evaluated without the value (which
costs a logarithm per row), and on every pattern a value-free step, then one evaluation
of value and gradient whose change along the step corrects the Hessian (the BFGS update)
for the last step: the full likelihood is evaluated twice in all, instead of the few
dozen a cold start needs. Without an exact Hessian (Pareto/NBD, whose second derivatives
of the hypergeometric function are not worth their cost) the first sample's Hessian, by
differences of its exact gradient, starts Newton and the BFGS update corrects it after
each step. The result is the optimum of the full likelihood (to a few 1e-6 in the
log-parameters): the samples only choose where the search starts. A stage that
misbehaves hands over to BFGS. These stages are our own Newton steps, not SciPy's: its
methods evaluate the value at every point and start each search afresh, where the plan
is to skip the value (a logarithm per row) and to carry a Hessian from one sample, or
from one step, to the next.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.optimize import OptimizeResult, minimize

from winback.models._data import Patterns
from winback.models.errors import ModelFitError

Objective = Callable[[np.ndarray], tuple[float, np.ndarray]]

SAMPLE_ROWS = 20_000
# |log parameter| beyond this means a parameter ran off to 0 or infinity (1e-13 .. 1e13).
EDGE = 30.0
GTOL = 1e-7
MAX_NEWTON_STEPS = 8
# A cold-start Newton search gives up (for BFGS) after this many steps.
MAX_SEARCH_STEPS = 50
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
    return _optimum(result)


def _optimum(result: OptimizeResult) -> tuple[np.ndarray, float]:
    """The point and value SciPy found; raises ``ModelFitError`` unless it is an optimum.
    SciPy reports "precision loss" once the gradient is at rounding level; that is an
    optimum. Only a gradient still far from zero is a failure."""
    gradient = _largest(result.jac)
    if not np.all(np.isfinite(result.x)) or not gradient < 1e-5:
        raise ModelFitError(
            f"the maximum likelihood search did not converge ({result.message}; "
            f"largest gradient {gradient:.3g}); the data may not carry enough information "
            "for this model"
        )
    return np.asarray(result.x), float(result.fun)


def _search(objective: Objective, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """The optimum from a cold start: SciPy's trust-region Newton method on the exact
    Hessian (``trust-exact``, about seven evaluations where BFGS takes twenty-five) when
    the objective has one, BFGS otherwise or when that fails."""
    exact = getattr(objective, "with_hessian", None)
    if exact is not None:
        try:
            return _trust_exact(exact, theta)
        except (ModelFitError, np.linalg.LinAlgError, ValueError):
            pass  # (SciPy's subproblem raises ValueError on a Hessian that is not finite)
    return _bfgs(objective, theta, None)


def _trust_exact(
    exact: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]], theta: np.ndarray
) -> tuple[np.ndarray, float]:
    """SciPy's ``trust-exact`` on ``exact``, which gives value, gradient and Hessian in
    one pass: SciPy asks for them separately at each point, so the last point's are
    kept. A value that is not finite counts as +inf, so that the trust region shrinks
    (with NaN it would propose the same step again and again)."""
    last: list[tuple[np.ndarray, tuple[float, np.ndarray, np.ndarray]]] = []

    def at(point: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        if not last or not np.array_equal(last[0][0], point):
            value, gradient, hessian = exact(point)
            last[:] = [(point.copy(), (value if np.isfinite(value) else np.inf, gradient, hessian))]
        return last[0][1]

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        result = minimize(
            lambda point: at(point)[:2],
            theta,
            jac=True,
            hess=lambda point: at(point)[2],
            method="trust-exact",
            options={"gtol": GTOL, "maxiter": MAX_SEARCH_STEPS},
        )
    return _optimum(result)


def _newton(
    objective: Objective,
    theta: np.ndarray,
    hessian: np.ndarray | None = None,
    finish: float = NEWTON_FINISH,
    came_from: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, float]:
    """Newton's method from a point near the optimum. With the objective's exact Hessian
    (``with_hessian``) it is evaluated at the start and again only if the gradient falls
    slowly. Otherwise the given ``hessian`` of a sample starts it (the two differ by the
    sampling error only) and is corrected after each step by the BFGS update. Once the
    gradient is below ``finish`` the last step is taken without another evaluation and
    the value there is the quadratic prediction. A step that does not improve, or
    progress too slow, hands over to BFGS. ``came_from`` is the point and gradient of
    the step that led to ``theta`` with ``hessian``, when the caller took it."""
    exact = getattr(objective, "with_hessian", None)
    best, best_value = theta, np.inf
    previous: tuple[np.ndarray, np.ndarray, float] | None = None
    if came_from is not None:
        previous = (*came_from, _largest(came_from[1]))
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for _ in range(MAX_NEWTON_STEPS):
            if exact is not None and hessian is None:
                value, gradient, hessian = exact(theta)
            else:
                value, gradient = objective(theta)
            if not (np.isfinite(value) and value <= best_value + 1e-12 * abs(value)):
                break
            best, best_value = theta, value
            largest = _largest(gradient)
            if previous is not None:
                last_theta, last_gradient, last_largest = previous
                if exact is not None and largest > 0.1 * last_largest:
                    value, gradient, hessian = exact(theta)
                elif exact is None and largest > 0.5 * last_largest:
                    break
                elif hessian is not None:
                    # The step and the change of gradient along it correct the Hessian,
                    # approximate or kept from the last point.
                    hessian = _bfgs_update(hessian, theta - last_theta, gradient - last_gradient)
            assert hessian is not None
            step = _newton_direction(hessian, gradient)
            if step is None:
                break
            if largest < finish:
                return theta - step, float(value - 0.5 * gradient @ step)
            previous = (theta, gradient, largest)
            theta = theta - step
    inverse = None
    if hessian is not None and np.all(np.linalg.eigvalsh(hessian) > 0):
        inverse = np.linalg.inv(hessian)
        inverse = (inverse + inverse.T) / 2
    return _bfgs(objective, best, inverse)


def _newton_step(
    exact: Callable[..., tuple[float, np.ndarray, np.ndarray]], theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One Newton step with the exact Hessian, evaluated without the value (the step
    does not need it): the new point, and the gradient and Hessian at ``theta``. None
    when the Hessian is not positive definite there."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        _, gradient, hessian = exact(theta, value=False)
        step = _newton_direction(hessian, gradient)
    return None if step is None else (theta - step, gradient, hessian)


def _newton_direction(hessian: np.ndarray, gradient: np.ndarray) -> np.ndarray | None:
    """The Newton step H⁻¹ g (to subtract), by Cholesky; None when the Hessian is not
    positive definite or the step not finite."""
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return None
    step = np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))
    return step if np.all(np.isfinite(step)) else None


def _bfgs_update(hessian: np.ndarray, step: np.ndarray, change: np.ndarray) -> np.ndarray:
    """The BFGS correction of a Hessian from one step and the gradient change along it
    (kept as it was when the curvature along the step is not positive)."""
    curvature = float(step @ change)
    pushed = hessian @ step
    if curvature <= 0:
        return hessian
    return (
        hessian
        + np.outer(change, change) / curvature
        - np.outer(pushed, pushed) / float(step @ pushed)
    )


def _largest(gradient: np.ndarray) -> float:
    return float(np.max(np.abs(gradient))) if np.all(np.isfinite(gradient)) else np.inf


def _staged(
    build: Callable[[Patterns], Objective], patterns: Patterns, theta: np.ndarray
) -> tuple[np.ndarray, float]:
    """The cold-start search (:func:`_search`) on a small sample, then Newton on samples
    ten times larger each time and on every pattern: each stage starts within the
    sampling error of the next one's optimum, where Newton converges in one or two
    steps. Without an exact Hessian the first sample's (differences of its exact
    gradient) serves every stage."""
    sizes = [SAMPLE_ROWS // 10]
    while 20 * sizes[-1] < patterns.rows:
        sizes.append(10 * sizes[-1])
    first, *larger = patterns.samples(sizes)
    objective = build(first)
    theta, _ = _search(objective, theta)
    hessian = None if hasattr(objective, "with_hessian") else _hessian(objective, theta)
    for sample in larger:
        objective = build(sample)
        exact = getattr(objective, "with_hessian", None)
        if exact is not None:
            # A sample's optimum is only known to its sampling error, and one Newton step
            # from the last stage's lands well within it: one evaluation per stage.
            step = _newton_step(exact, theta)
            theta = theta if step is None else step[0]
        else:
            theta, _ = _newton(objective, theta, hessian, finish=10 * NEWTON_FINISH)
    objective = build(patterns)
    exact = getattr(objective, "with_hessian", None)
    if exact is not None:
        # The first step on every pattern, without the value; the next evaluation judges it.
        step = _newton_step(exact, theta)
        if step is not None:
            after, gradient, hessian = step
            return _newton(objective, after, hessian, NEWTON_FINISH / 10, (theta, gradient))
    # The last step from an approximate Hessian is less exact: finish closer.
    finish = NEWTON_FINISH if hessian is None else NEWTON_FINISH / 10
    return _newton(objective, theta, hessian, finish=finish)


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
    if patterns.rows > 2 * SAMPLE_ROWS:
        try:
            theta, value = _staged(build, patterns, theta)
        except ModelFitError:
            # A sample that the search could not fit: the whole base decides.
            theta, value = _search(build(patterns), np.asarray(start, dtype=np.float64))
    else:
        theta, value = _search(build(patterns), theta)
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
