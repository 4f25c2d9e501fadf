"""Human interaction: the events that prove a person is alive.

An event is a human interaction when its type is an interaction
(:data:`winback.domain.INTERACTIONS`: open, click, purchase, visit, login, reply) and:

- an open is not a machine open (the rule of :mod:`winback.scoring.machine_open`);
- a click does not carry the ``bot`` flag (the tracking server sets it with the
  bot-click rule of :mod:`winback.web.bots`; ESP exports and webhooks say it themselves);
- any other interaction counts as it is.

``sent`` and ``delivered`` never count. Scoring reads it to time the inactivity, the tick
to see who reacted to a step, the reports to count who opened or clicked.
:func:`is_human_interaction` is the rule on plain values, :func:`human_interaction_sql`
the same rule as SQL; a property test checks that both agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, case

from winback.domain import INTERACTIONS, EventType

_OTHER_INTERACTIONS = sorted(INTERACTIONS - {EventType.OPEN, EventType.CLICK})


def is_human_interaction(kind: str, *, machine_open: bool, bot: bool | None) -> bool:
    """Whether an event of type ``kind`` proves a person. ``machine_open`` is the verdict
    of the machine-open rule (read only for an open), ``bot`` the click's flag.

    >>> is_human_interaction("click", machine_open=False, bot=True)
    False
    >>> is_human_interaction("purchase", machine_open=False, bot=None)
    True
    """
    if kind == EventType.OPEN:
        return not machine_open
    if kind == EventType.CLICK:
        return bot is not True
    return kind in INTERACTIONS


def human_interaction_sql(
    kind: ColumnElement[Any], *, machine_open: ColumnElement[bool], bot: ColumnElement[Any]
) -> ColumnElement[int]:
    """SQL for :func:`is_human_interaction`, as 1 or 0 (an aggregate counts or filters on
    it without converting a boolean). ``machine_open`` is a condition on the open, e.g.
    :func:`winback.scoring.machine_open.machine_open_sql`."""
    return case(
        (kind == EventType.OPEN.value, case((machine_open, 0), else_=1)),
        (kind == EventType.CLICK.value, case((bot.is_(True), 0), else_=1)),
        (kind.in_(_OTHER_INTERACTIONS), 1),
        else_=0,
    )
