"""Protection of paying subscribers: a contact with an active paid subscription is not
won back.

Under ``policy.protect_subscribers``, a contact whose subscription is active and whose
stage is one a win-back journey works on (``at_risk``, ``dormant``, ``lost``) is flagged
``dormant_subscriber``: it keeps its stage (the reports count it), but journeys never
enrol it. Someone who pays every month is not "lost" for having opened no email.

:func:`is_protected` is the rule on plain values, :func:`protected_sql` the same rule as
SQL for the bulk scoring; a property test checks that both agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false

from winback.domain import Stage

# The stages a win-back journey works on.
WINBACK_STAGES = frozenset({Stage.AT_RISK, Stage.DORMANT, Stage.LOST})


def is_protected(stage: str, *, subscription_active: bool, protect_subscribers: bool) -> bool:
    """Whether the contact is a ``dormant_subscriber``, out of the journeys' reach.

    >>> is_protected("dormant", subscription_active=True, protect_subscribers=True)
    True
    """
    return protect_subscribers and subscription_active and stage in WINBACK_STAGES


def protected_sql(
    stage: ColumnElement[Any],
    subscription_active: ColumnElement[Any],
    *,
    protect_subscribers: bool,
) -> ColumnElement[bool]:
    """SQL for :func:`is_protected` on a stage and a subscription column."""
    if not protect_subscribers:
        return false()
    return and_(
        subscription_active.is_(True),
        stage.in_(sorted(s.value for s in WINBACK_STAGES)),
    )
