"""A small reference implementation of the per-contact facts and stages in plain
Python, row by row, built on the pure rules of winback.scoring: the property tests
compare the SQL against it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from winback.domain import INTERACTIONS
from winback.scoring.machine_open import is_machine_open
from winback.scoring.rfm import quintile_breakpoints, quintile_score, spend_level
from winback.scoring.stages import Policy, clock_anchor, day_number, decide_stage

CHANNELS = ("email", "sms", "web", "app", "store")


def _human(event: dict[str, Any], history: list[dict[str, Any]], seconds: int) -> bool:
    if event["type"] == "open":
        delivered = [
            e["occurred_at"]
            for e in history
            if e["type"] == "delivered"
            and event["message_id"] is not None
            and e["message_id"] == event["message_id"]
        ] or [None]
        return not any(
            is_machine_open(
                flag=event["machine_open"],
                user_agent=event["user_agent"],
                opened_at=event["occurred_at"],
                delivered_at=moment,
                machine_open_seconds=seconds,
            )
            for moment in delivered
        )
    if event["type"] == "click":
        return event["bot"] is not True
    return event["type"] in INTERACTIONS


def reference_scores(
    contacts: list[dict[str, Any]],
    events: list[dict[str, Any]],
    policy: Policy,
    now: datetime,
    timezone: str,
    seconds: int,
    breakpoints: dict[str, tuple[float, ...] | None] | None = None,
) -> tuple[dict[int, dict[str, Any]], dict[str, tuple[float, ...] | None]]:
    """Per contact id: the facts, the clock and the verdict columns of contact_scores;
    and the RFM breakpoints used: ``breakpoints`` when given (an incremental run keeps
    those of the last full score), else the quintiles of today's customers."""
    tz = ZoneInfo(timezone)
    today = day_number(now, tz)
    result: dict[int, dict[str, Any]] = {}
    for contact in contacts:
        history = [e for e in events if e["contact_id"] == contact["id"]]
        human = [e for e in history if _human(e, history, seconds)]
        buys = [e for e in history if e["type"] == "purchase"]
        activity = [
            e
            for e in history
            if e["type"] in policy.customer_activity
            and (e["type"] not in INTERACTIONS or e in human)
        ]
        last = max((e["occurred_at"] for e in human), default=None)
        row: dict[str, Any] = {
            "last_interaction_at": last,
            **{
                f"last_{ch}_at": max(
                    (e["occurred_at"] for e in human if e["channel"] == ch), default=None
                )
                for ch in CHANNELS
            },
            "first_purchase_at": min((e["occurred_at"] for e in buys), default=None),
            "last_purchase_at": max((e["occurred_at"] for e in buys), default=None),
            "purchases": len(buys),
            "total_spend": float(sum(e["amount"] or 0 for e in buys)),
        }
        activity_at = max((e["occurred_at"] for e in activity), default=None)
        anchor = clock_anchor(
            is_customer=bool(buys),
            activity_day=None if activity_at is None else day_number(activity_at, tz),
            created_day=day_number(contact["created_at"], tz),
            interaction_day=None if last is None else day_number(last, tz),
        )
        row["clock_days"] = today - anchor
        row["days_inactive"] = None if last is None else today - day_number(last, tz)
        stage, protected = decide_stage(
            is_customer=bool(buys),
            clock_days=row["clock_days"],
            email_status=contact["email_status"],
            sms_status=contact["sms_status"],
            lost_by_journey_at=contact["lost_by_journey_at"],
            last_interaction_at=last,
            subscription_active=contact["subscription_active"],
            policy=policy,
        )
        row["stage"] = stage.value
        row["dormant_subscriber"] = protected
        result[contact["id"]] = row
    customers = [r for r in result.values() if r["purchases"]]
    metrics: dict[str, Callable[[dict[str, Any]], Any]] = {
        "recency_score": lambda r: day_number(r["last_purchase_at"], tz),
        "frequency_score": lambda r: r["purchases"],
        "monetary_score": lambda r: r["total_spend"],
    }
    if breakpoints is None:
        breakpoints = {
            name: quintile_breakpoints(metric(r) for r in customers)
            for name, metric in metrics.items()
        }
    for name, metric in metrics.items():
        points = breakpoints[name]
        for r in result.values():
            r[name] = quintile_score(metric(r), points) if r["purchases"] and points else None
    for r in result.values():
        r["spend_level"] = spend_level(r["monetary_score"])
    return result, breakpoints
