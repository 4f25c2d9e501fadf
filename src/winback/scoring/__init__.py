"""Scoring: inactivity facts, RFM, lifecycle stages and segments of the base.

Public face:

- :func:`score_base` runs ``winback score`` (full or incremental) in the store;
- :func:`decide_stage` and :class:`Policy` are the stage rules as a pure function;
- :func:`is_machine_open` is the machine-open (Apple MPP) rule, shared with tracking;
- :func:`contact_scores` gives one contact's scores and stage history as plain data;
- :mod:`winback.scoring.segments` saves, counts and exports named segments, written in
  the segment language (:mod:`winback.scoring.segment_language`).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from winback.scoring.contact import contact_scores
    from winback.scoring.engine import ScoreResult, score_base
    from winback.scoring.machine_open import is_machine_open, is_proxy_user_agent
    from winback.scoring.stages import Policy, decide_stage

__all__ = [
    "Policy",
    "ScoreResult",
    "contact_scores",
    "decide_stage",
    "is_machine_open",
    "is_proxy_user_agent",
    "score_base",
]
# Loaded on first use: the engine brings the models and SciPy, which a part that needs
# only the rules (the tracking server's machine-open test) should not pay for.
_HOMES = {
    "Policy": "winback.scoring.stages",
    "ScoreResult": "winback.scoring.engine",
    "contact_scores": "winback.scoring.contact",
    "decide_stage": "winback.scoring.stages",
    "is_machine_open": "winback.scoring.machine_open",
    "is_proxy_user_agent": "winback.scoring.machine_open",
    "score_base": "winback.scoring.engine",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'winback.scoring' has no attribute {name!r}")
