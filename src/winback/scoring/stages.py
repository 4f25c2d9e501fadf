"""The stage rules, without I/O: plain values in, a stage out.

This module is the definition. The bulk scoring SQL (:mod:`winback.scoring.engine`)
writes the same rules as ``CASE`` expressions, and the property tests check that both
give the same answer for any history.

The clock. Days are whole calendar days between two dates in the workspace zone; each
date is given here as a *day number* (days since 1970-01-01, :func:`day_number`).

- A customer (at least one purchase) is timed from the last event whose type is in
  ``policy.customer_activity``. A purchase always counts as customer activity, whatever
  the profile says: it is what makes a customer, and it keeps the clock defined for a
  subscription customer who never logged in.
- A prospect (no purchase) is timed from the later of its creation and its last
  interaction of any kind.

The stage, in order of precedence:

1. consent: a contact with at least one address whose every address is refused gets the
   consent stage ``complained``, else ``unsubscribed``, else ``bounced`` (the person's own
   "no" outranks a technical failure). One reachable channel is enough to be scored on
   activity: email complained + SMS subscribed is scored like anyone else.
2. ``lost`` when a finished win-back journey let the contact go and it has not
   interacted since.
3. the clock: ``active`` (``prospect`` for a non-customer) under ``at_risk_after`` days,
   then ``at_risk``, ``dormant`` from ``dormant_after``, ``lost`` from ``lost_after``; the
   thresholds are inclusive. With ``policy.clock = "p_alive"``, a customer who has a
   model estimate is staged by it instead.

``dormant_subscriber`` is set, under ``policy.protect_subscribers``, for a contact with an
active paid subscription whose stage is at_risk, dormant or lost: journeys never enrol it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from winback.clock import local_date
from winback.config import PolicySection
from winback.domain import REFUSED_STATUSES, ChannelStatus, EventType, Stage

EPOCH = date(1970, 1, 1)
# Consent stages from the strongest "no" to the weakest.
CONSENT_PRECEDENCE = (Stage.COMPLAINED, Stage.UNSUBSCRIBED, Stage.BOUNCED)
WINBACK_STAGES = frozenset({Stage.AT_RISK, Stage.DORMANT, Stage.LOST})
SPEND_LEVELS = ("low", "medium", "high")
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


def consent_stage(email_status: str, sms_status: str) -> Stage | None:
    """The consent stage of a contact, or None when it is scored on activity."""
    statuses = [ChannelStatus(s) for s in (email_status, sms_status)]
    known = [s for s in statuses if s != ChannelStatus.NONE]
    if not known or not all(s in REFUSED_STATUSES for s in known):
        return None
    for stage in CONSENT_PRECEDENCE:
        if any(s.value == stage.value for s in known):
            return stage
    raise AssertionError("a refusal is always a consent stage")


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
    protected = policy.protect_subscribers and subscription_active and stage in WINBACK_STAGES
    return stage, protected


def quintile_breakpoints(values: Iterable[float]) -> tuple[float, ...] | None:
    """The 20th, 40th, 60th and 80th percentiles (the value at rank ceil(p·n), as SQL's
    ``percentile_disc``) of the customers' values, or None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    n = len(ordered)
    return tuple(ordered[math.ceil(p * n) - 1] for p in (0.2, 0.4, 0.6, 0.8))


def quintile_score(value: float, breakpoints: Sequence[float]) -> int:
    """1 to 5: one plus the number of breakpoints the value is above. Equal values get
    equal scores, so a base where most customers bought once gives them all F = 1."""
    return 1 + sum(1 for point in breakpoints if value > point)


def spend_level(monetary_score: int | None) -> str | None:
    """low (M 1–2), medium (M 3–4) or high (M 5); None for a non-customer."""
    if monetary_score is None:
        return None
    return "low" if monetary_score <= 2 else "medium" if monetary_score <= 4 else "high"
