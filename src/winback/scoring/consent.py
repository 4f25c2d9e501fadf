"""Consent and refusal: the contacts staged by their "no" rather than by their activity.

A contact with at least one address whose every address is refused (``unsubscribed``,
``bounced`` or ``complained``, see :data:`winback.domain.REFUSED_STATUSES`) gets a consent stage:
``complained``, else ``unsubscribed``, else ``bounced`` (the person's own "no" outranks a
technical failure). One reachable channel is enough to be scored on activity: email
complained + SMS subscribed is scored like anyone else. A contact with no address at all
is scored on activity too.

:func:`consent_stage` is the rule on plain values; :func:`every_address_refused` and
:func:`consent_stage_sql` are the same rule as SQL, for the bulk scoring and the health
report. A property test checks that both give the same answer.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, case, not_, or_

from winback.domain import REFUSED_STATUSES, ChannelStatus, Stage

# Consent stages from the strongest "no" to the weakest.
CONSENT_PRECEDENCE = (Stage.COMPLAINED, Stage.UNSUBSCRIBED, Stage.BOUNCED)


def consent_stage(email_status: str, sms_status: str) -> Stage | None:
    """The consent stage of a contact, or None when it is scored on activity.

    >>> consent_stage("complained", "subscribed") is None
    True
    >>> consent_stage("bounced", "unsubscribed")
    <Stage.UNSUBSCRIBED: 'unsubscribed'>
    """
    statuses = [ChannelStatus(s) for s in (email_status, sms_status)]
    known = [s for s in statuses if s != ChannelStatus.NONE]
    if not known or not all(s in REFUSED_STATUSES for s in known):
        return None
    for stage in CONSENT_PRECEDENCE:
        if any(s.value == stage.value for s in known):
            return stage
    raise AssertionError("a refusal is always a consent stage")


def every_address_refused(
    email_status: ColumnElement[Any], sms_status: ColumnElement[Any]
) -> ColumnElement[bool]:
    """SQL: the contact has at least one address, and every address it has is refused
    (:func:`consent_stage` is not None)."""
    refused = sorted(REFUSED_STATUSES)
    none = ChannelStatus.NONE.value
    email_known, sms_known = email_status != none, sms_status != none
    return and_(
        or_(email_known, sms_known),
        or_(not_(email_known), email_status.in_(refused)),
        or_(not_(sms_known), sms_status.in_(refused)),
    )


def consent_stage_sql(
    email_status: ColumnElement[Any], sms_status: ColumnElement[Any]
) -> ColumnElement[Any]:
    """SQL: the consent stage of a contact for which :func:`every_address_refused` holds
    (the caller tests that first, as the ``WHEN`` of a ``CASE``)."""
    *stronger, weakest = CONSENT_PRECEDENCE
    return case(
        *(
            (or_(email_status == stage.value, sms_status == stage.value), stage.value)
            for stage in stronger
        ),
        else_=weakest.value,
    )
