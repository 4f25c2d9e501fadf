"""The buy-till-you-die models: each customer's own clock and value.

``BetaGeo`` (BG/NBD, Fader, Hardie & Lee 2005) and ``ParetoNBD`` (Schmittlein, Morrison &
Colombo 1987) estimate from (frequency, recency, T) whether a customer is still alive and
how often they will buy; ``GammaGamma`` (Fader & Hardie) how much they spend; ``clv``
combines them into a discounted value over a horizon; ``summary_from_transactions``
builds the summary from a transaction log; ``simulate_bgnbd`` and ``simulate_pareto`` draw
customers with known parameters. Arrays in, arrays out: NumPy arrays or anything
array-like (pandas or Polars columns). No I/O and no clock: the caller passes the end of
the observation.

Why our own code rather than a library. ``lifetimes`` wrote these models for Python
first, but it is unmaintained, pinned to old pandas and NumPy, and slow: it fits with
autograd on every customer row (BG/NBD) or with Nelder-Mead (Pareto/NBD).
PyMC-Marketing is maintained but brings a whole Bayesian stack (PyMC, PyTensor, ArviZ)
for what is, here, a four-parameter maximum likelihood. We took the published formulas
both use: the likelihoods, P(alive), conditional expectations and the Gamma-Gamma mean
from Fader & Hardie's papers and notes, lifetimes' choices for the summary (purchases on
one day are one purchase) and for CLV (monthly steps, discount (1 + d)^i), and
PyMC-Marketing's subtraction-free arrangement of the Pareto/NBD likelihood. What is ours:
log-space evaluation with the exact gradient, the fit on distinct (x, t_x, T) patterns
weighted by their counts (only when rows repeat) with terms in x alone summed once per
distinct value, BG/NBD's exact Hessian with two logarithms and one exponential per customer, a
positive-term series (and quadrature near z = 1) for the hypergeometric function, and a
fit in stages (SciPy's trust-region Newton method on a sample, one Newton step on samples
ten times larger, then two evaluations on every customer) so a large base fits quickly
(bench/models.py).
The tests check the fits against the published CDNOW estimates.
"""

from winback.models.bgnbd import BetaGeo
from winback.models.clv import clv
from winback.models.errors import ModelFitError, ModelInputError
from winback.models.gammagamma import GammaGamma
from winback.models.pareto import ParetoNBD
from winback.models.simulate import Simulated, simulate_bgnbd, simulate_pareto
from winback.models.summary import Summary, summary_from_transactions

__all__ = [
    "BetaGeo",
    "GammaGamma",
    "ModelFitError",
    "ModelInputError",
    "ParetoNBD",
    "Simulated",
    "Summary",
    "clv",
    "simulate_bgnbd",
    "simulate_pareto",
    "summary_from_transactions",
]
