"""Scoring: inactivity facts, RFM, lifecycle stages and segments of the base.

Public face:

- :func:`score` runs ``winback score`` (full or incremental) in the store, in parts:
  :mod:`~winback.scoring.run` (the operation), :mod:`~winback.scoring.facts` (the
  per-contact facts, whose filler another engine may replace), :mod:`~winback.scoring.rfm`
  and :mod:`~winback.scoring.derive` (the derived rows and their write);
- the rules, each in one module with its SQL twin beside its Python:
  :mod:`~winback.scoring.stages` (stages and clocks: :func:`decide_stage`,
  :class:`Policy`), :mod:`~winback.scoring.consent`, :mod:`~winback.scoring.protection`,
  :mod:`~winback.scoring.machine_open` (:func:`is_machine_open`, shared with tracking),
  :mod:`~winback.scoring.interaction` (human interaction), :mod:`~winback.scoring.rfm`;
- :func:`contact_scores` gives one contact's scores and stage history as plain data;
- :mod:`winback.scoring.segments` saves, counts and exports named segments, written in
  the segment language (:mod:`winback.scoring.segment_language`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from winback.lazy import lazy_face

if TYPE_CHECKING:
    from winback.scoring.contact import contact_scores
    from winback.scoring.machine_open import is_machine_open, is_proxy_user_agent
    from winback.scoring.run import ScoreResult, score
    from winback.scoring.stages import Policy, decide_stage

__all__ = [
    "Policy",
    "ScoreResult",
    "contact_scores",
    "decide_stage",
    "is_machine_open",
    "is_proxy_user_agent",
    "score",
]
# Loaded on first use: the run brings the models and SciPy, which a part that needs
# only the rules (the tracking server's machine-open test) should not pay for.
_HOMES = {
    "Policy": "stages",
    "ScoreResult": "run",
    "contact_scores": "contact",
    "decide_stage": "stages",
    "is_machine_open": "machine_open",
    "is_proxy_user_agent": "machine_open",
    "score": "run",
}
__getattr__ = lazy_face(__name__, _HOMES)
