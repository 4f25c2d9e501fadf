"""The errors of the models. A scorer catches ``ModelFitError`` and falls back to the day
thresholds of the policy, saying why; ``ModelInputError`` is a caller's mistake."""

from __future__ import annotations

from winback.errors import WinbackError


class ModelInputError(WinbackError, ValueError):
    """The arrays given to a model are not a valid customer summary (negative counts,
    recency after the end of the observation, arrays of different lengths, NaN)."""

    exit_code = 3


class ModelFitError(WinbackError):
    """The model cannot be fitted on this base: too few customers, no repeat buyers, or
    an optimum at the edge of the parameter space. The message says what is missing."""

    exit_code = 6
