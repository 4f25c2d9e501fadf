"""Stages and clocks: plain values in, a stage out, and the same rules as SQL.

:func:`decide_stage` and :func:`clock_anchor` are the rules on plain values;
:func:`stage_sql` and :func:`clock_anchor_sql` write them as ``CASE`` expressions for the
bulk scoring (:mod:`winback.scoring.derive`), and a property test checks that both give
the same answer. The consent stages are :mod:`winback.scoring.consent`'s, the
``dormant_subscriber`` flag :mod:`winback.scoring.protection`'s.

The clock. Days are whole calendar days between two dates in the workspace zone; each
date is given here as a *day number* (days since 1970-01-01, :func:`day_number`).

- A customer (at least one purchase) is timed from the last event whose type is in
  ``policy.customer_activity``. A purchase always counts as customer activity, whatever
  the profile says: it is what makes a customer, and it keeps the clock defined for a
  subscription customer who never logged in.
- A prospect (no purchase) is timed from the later of its creation and its last
  interaction of any kind.

The stage, in order of precedence:

1. consent: a contact with at least one address whose every address is refused gets its
   consent stage (:mod:`winback.scoring.consent`).
2. ``lost`` when a finished win-back journey let the contact go and it has not
   interacted since.
3. the clock: ``active`` (``prospect`` for a non-customer) under ``at_risk_after`` days,
   then ``at_risk``, ``dormant`` from ``dormant_after``, ``lost`` from ``lost_after``; the
   thresholds are inclusive. With ``policy.clock = "p_alive"``, a customer who has a
   model estimate is staged by it instead.

``dormant_subscriber`` is set, under ``policy.protect_subscribers``, for a contact with an
active paid subscription whose stage is at_risk, dormant or lost: journeys never enrol it
(:mod:`winback.scoring.protection`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, or_

from winback.clock import local_date
from winback.config import PolicySection
from winback.domain import EventType, Stage
from winback.scoring.consent import consent_stage, consent_stage_sql, every_address_refused
from winback.scoring.protection import is_protected

EPOCH = date(1970, 1, 1)
# Age bands for segments, as (label, lowest age, highest age).
AGE_BANDS = (
    ("18-24", 18, 24),
    ("25-34", 25, 34),
    ("35-44", 35, 44),
    ("45-54", 45, 54),
    ("55-64", 55, 64),
    ("65+", 65, 200),
)


@dataclass(frozen=True)
class Policy:
    """The part of ``[policy]`` the stage rules read."""

    customer_activity: frozenset[str]
    at_risk_after: int
    dormant_after: int
    lost_after: int
    protect_subscribers: bool = False
    clock: str = "days"
    at_risk_p_alive: float = 0.5
    dormant_p_alive: float = 0.3
    lost_p_alive: float = 0.1

    @classmethod
    def from_config(cls, policy: PolicySection) -> Policy:
        return cls(
            customer_activity=frozenset(str(kind) for kind in policy.customer_activity)
            | {EventType.PURCHASE.value},
            at_risk_after=policy.at_risk_after,
            dormant_after=policy.dormant_after,
            lost_after=policy.lost_after,
            protect_subscribers=policy.protect_subscribers,
            clock=policy.clock,
            at_risk_p_alive=policy.at_risk_p_alive,
            dormant_p_alive=policy.dormant_p_alive,
            lost_p_alive=policy.lost_p_alive,
        )

    def clock_thresholds(self) -> tuple[tuple[int, Stage], ...]:
        """(days, stage) of the day clock, the longest first: the first threshold a
        reading reaches gives the stage. The SQL of the engine is built from it too."""
        return (
            (self.lost_after, Stage.LOST),
            (self.dormant_after, Stage.DORMANT),
            (self.at_risk_after, Stage.AT_RISK),
        )

    def p_alive_thresholds(self) -> tuple[tuple[float, Stage], ...]:
        """(P(alive), stage) of the p_alive clock, the lowest first: the first bound a
        customer's P(alive) is under gives the stage (else ``active``)."""
        return (
            (self.lost_p_alive, Stage.LOST),
            (self.dormant_p_alive, Stage.DORMANT),
            (self.at_risk_p_alive, Stage.AT_RISK),
        )


def day_number(moment: datetime | date, tz: ZoneInfo) -> int:
    """Days since 1970-01-01 of the calendar date of ``moment`` in ``tz`` (a naive
    datetime is UTC, as the store keeps it; a date is taken as it is)."""
    if isinstance(moment, datetime):
        moment = local_date(moment, tz)
    return (moment - EPOCH).days


def from_day_number(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + number)


def clock_stage(clock_days: int, is_customer: bool, policy: Policy) -> Stage:
    """The stage a clock reading gives (thresholds inclusive)."""
    for days, stage in policy.clock_thresholds():
        if clock_days >= days:
            return stage
    return Stage.ACTIVE if is_customer else Stage.PROSPECT


def p_alive_stage(p_alive: float, policy: Policy) -> Stage:
    """The stage a customer's probability of being alive gives."""
    for bound, stage in policy.p_alive_thresholds():
        if p_alive < bound:
            return stage
    return Stage.ACTIVE


def clock_anchor(
    *,
    is_customer: bool,
    activity_day: int | None,
    created_day: int,
    interaction_day: int | None,
) -> int:
    """The day the dormancy clock starts from (see the module docstring)."""
    if is_customer and activity_day is not None:
        return activity_day
    return max(created_day, interaction_day if interaction_day is not None else created_day)


def decide_stage(
    *,
    is_customer: bool,
    clock_days: int,
    email_status: str,
    sms_status: str,
    lost_by_journey_at: datetime | None,
    last_interaction_at: datetime | None,
    subscription_active: bool,
    policy: Policy,
    p_alive: float | None = None,
) -> tuple[Stage, bool]:
    """The stage of one contact and its ``dormant_subscriber`` flag.

    >>> policy = Policy(frozenset({"purchase"}), 120, 180, 365)
    >>> decide_stage(is_customer=True, clock_days=180, email_status="subscribed",
    ...              sms_status="none", lost_by_journey_at=None, last_interaction_at=None,
    ...              subscription_active=False, policy=policy)
    (<Stage.DORMANT: 'dormant'>, False)
    """
    stage = consent_stage(email_status, sms_status)
    if (
        stage is None
        and lost_by_journey_at is not None
        and (last_interaction_at is None or last_interaction_at <= lost_by_journey_at)
    ):
        stage = Stage.LOST
    if stage is None:
        if policy.clock == "p_alive" and is_customer and p_alive is not None:
            stage = p_alive_stage(p_alive, policy)
        else:
            stage = clock_stage(clock_days, is_customer, policy)
    protected = is_protected(
        stage,
        subscription_active=subscription_active,
        protect_subscribers=policy.protect_subscribers,
    )
    return stage, protected


def clock_anchor_sql(
    *,
    is_customer: ColumnElement[bool],
    activity_day: ColumnElement[Any],
    created_day: ColumnElement[Any],
    interaction_day: ColumnElement[Any],
) -> ColumnElement[Any]:
    """SQL for :func:`clock_anchor`, on day-number columns."""
    prospect_anchor = case(
        (and_(interaction_day.is_not(None), interaction_day > created_day), interaction_day),
        else_=created_day,
    )
    return case((and_(is_customer, activity_day.is_not(None)), activity_day), else_=prospect_anchor)


def stage_sql(
    *,
    is_customer: ColumnElement[bool],
    clock_days: ColumnElement[Any],
    email_status: ColumnElement[Any],
    sms_status: ColumnElement[Any],
    lost_by_journey_at: ColumnElement[Any],
    last_interaction_at: ColumnElement[Any],
    policy: Policy,
    p_alive: ColumnElement[Any],
) -> ColumnElement[Any]:
    """SQL for the stage of :func:`decide_stage` (its flag is
    :func:`winback.scoring.protection.protected_sql` of this stage)."""
    by_clock = case(
        *((clock_days >= days, stage.value) for days, stage in policy.clock_thresholds()),
        (is_customer, Stage.ACTIVE.value),
        else_=Stage.PROSPECT.value,
    )
    lost_by_journey = and_(
        lost_by_journey_at.is_not(None),
        or_(last_interaction_at.is_(None), last_interaction_at <= lost_by_journey_at),
    )
    whens: list[tuple[Any, Any]] = [
        (
            every_address_refused(email_status, sms_status),
            consent_stage_sql(email_status, sms_status),
        ),
        (lost_by_journey, Stage.LOST.value),
    ]
    if policy.clock == "p_alive":
        by_p_alive = case(
            *((p_alive < bound, stage.value) for bound, stage in policy.p_alive_thresholds()),
            else_=Stage.ACTIVE.value,
        )
        whens.append((and_(is_customer, p_alive.is_not(None)), by_p_alive))
    return case(*whens, else_=by_clock)
