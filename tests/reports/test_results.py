"""A journey's results on a hand-built history: every figure of `journey show`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from scipy import stats
from sqlalchemy import Connection, insert

from tests.builders import add_event, day
from tests.journeys.conftest import SIMPLE, add, scored
from winback.clock import to_db
from winback.reports.results import journey_results
from winback.store.schema import enrollments, offers, outbox, stage_history
from winback.workspace import Workspace

START = day(2025, 3, 3, 9)
DAYS = timedelta(days=1)


def enrolled(c: Connection, contact: int, *, holdout: bool) -> int:
    row = {
        "journey_id": 1,
        "contact_id": contact,
        "holdout": holdout,
        "status": "active",
        "enrolled_at": to_db(START),
        "next_due_at": to_db(START + 30 * DAYS),
    }
    return int(c.execute(insert(enrollments).returning(enrollments.c.id), row).scalar_one())


def sent(c: Connection, enrollment: int, contact: int, step: str, at_day: int, **row: Any) -> int:
    values = {
        "idempotency_key": f"{enrollment}:{step}",
        "enrollment_id": enrollment,
        "contact_id": contact,
        "journey": "spring",
        "step_id": step,
        "channel": "email",
        "status": "sent",
        "created_at": to_db(START + at_day * DAYS),
        "due_at": to_db(START + at_day * DAYS),
        "sent_at": to_db(START + at_day * DAYS),
        **row,
    }
    return int(c.execute(insert(outbox).returning(outbox.c.id), values).scalar_one())


@pytest.fixture
def played(workspace: Workspace) -> Workspace:
    """Four treated contacts (t1..t4) and four in the holdout (h1..h4), three months on."""
    add(workspace, SIMPLE)
    with workspace.engine.begin() as c:
        t = [scored(c, email=f"t{n}@example.com") for n in range(1, 5)]
        h = [scored(c, email=f"h{n}@example.com") for n in range(1, 5)]
        e = [enrolled(c, contact, holdout=False) for contact in t]
        for contact in h:
            enrolled(c, contact, holdout=True)
        first = [sent(c, e[i], t[i], "miss-you", 1) for i in range(4)]
        second = [sent(c, e[i], t[i], "offer", 31) for i in range(2)]
        for i in (0, 1, 3):
            add_event(c, t[i], "delivered", START + 1 * DAYS, outbox_id=first[i])
        add_event(c, t[2], "bounce_hard", START + 1 * DAYS, outbox_id=first[2])
        add_event(c, t[0], "open", START + 2 * DAYS, outbox_id=first[0], machine_open=False)
        add_event(c, t[1], "open", START + 1 * DAYS, outbox_id=first[1], machine_open=True)
        add_event(c, t[0], "click", START + 2 * DAYS, outbox_id=first[0], bot=False)
        add_event(c, t[1], "click", START + 1 * DAYS, outbox_id=first[1], bot=True)
        add_event(c, t[1], "unsubscribe", START + 40 * DAYS, outbox_id=second[1])
        # t2 buys 2 days after the first message, t1 2 days after the offer: conversions.
        add_event(c, t[1], "purchase", START + 3 * DAYS, amount=20.0)
        add_event(c, t[0], "purchase", START + 33 * DAYS, amount=50.0)
        # t4 buys 19 days after its message: revenue, not a conversion of the journey.
        add_event(c, t[3], "purchase", START + 20 * DAYS, amount=30.0)
        # A holdout contact buys too, and a purchase before enrolment counts for nobody.
        add_event(c, h[0], "purchase", START + 10 * DAYS, amount=10.0)
        add_event(c, h[1], "purchase", START - 10 * DAYS, amount=999.0)
        c.execute(
            insert(stage_history),
            [
                {"contact_id": t[0], "from_stage": "dormant", "to_stage": "active",
                 "changed_on": date(2025, 4, 6)},
                {"contact_id": t[1], "from_stage": "dormant", "to_stage": "active",
                 "changed_on": date(2025, 3, 7)},
                {"contact_id": h[0], "from_stage": "dormant", "to_stage": "active",
                 "changed_on": date(2025, 3, 14)},
                {"contact_id": h[1], "from_stage": "dormant", "to_stage": "active",
                 "changed_on": date(2025, 2, 1)},  # before enrolment: not a reactivation
            ],
        )  # fmt: skip
        c.execute(
            insert(offers),
            {"code": "SPRING-T1", "contact_id": t[0], "enrollment_id": e[0], "journey": "spring",
             "step_id": "offer", "percent": 20.0, "created_at": to_db(START),
             "redeemed_at": to_db(START + 33 * DAYS)},
        )  # fmt: skip
    return workspace


def test_every_figure_of_a_played_journey(played: Workspace) -> None:
    result = journey_results(played, "spring", START + 90 * DAYS)
    assert (result["enrolled"], result["holdout"]) == (8, 4)
    steps = {step["id"]: step for step in result["steps"]}
    first, offer = steps["miss-you"], steps["offer"]
    assert (first["sent"], first["delivered"], first["bounced"]) == (4, 3, 1)
    assert (first["opened"], first["clicked"]) == (1, 1)  # machine open and bot click left out
    assert (first["conversions"], first["revenue"]) == (1, 20.0)
    assert (offer["sent"], offer["unsubscribed"], offer["conversions"], offer["revenue"]) == (
        2, 1, 1, 50.0,
    )  # fmt: skip
    assert offer["redeemed"] == 1 and first["redeemed"] == 0
    assert (result["conversions"], result["revenue"], result["redeemed"]) == (2, 70.0, 1)
    assert result["cost"] == pytest.approx(6 * 0.001, abs=0.005)
    assert result["discounts"] == pytest.approx(50.0 * 20 / 80)
    assert result["reactivated"] == {"treated": 2, "holdout": 1}
    lift = result["lift"]
    assert (lift["treated"], lift["holdout"], lift["difference"]) == (0.5, 0.25, 0.25)
    assert lift["relative"] == pytest.approx(1.0)
    assert not lift["significant"]  # four contacts a side prove nothing
    revenue = result["revenue_lift"]
    assert (revenue["treated"], revenue["holdout"]) == (25.0, 2.5)
    welch = stats.ttest_ind([50, 20, 0, 30], [10, 0, 0, 0], equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert revenue["ci_low"] == pytest.approx(interval.low)
    assert revenue["ci_high"] == pytest.approx(interval.high)
    assert result["incremental_revenue"] == pytest.approx(90.0)
    assert result["roi"] == pytest.approx((90.0 - 0.006 - 12.5) / 0.006)
    assert "not significant" in result["verdict"]["lift"]


def test_a_purchase_is_credited_once_to_the_latest_message(played: Workspace) -> None:
    # With a 60-day window t1's purchase is within reach of both messages: the offer,
    # sent last, gets it.
    config = played.path / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("attribution_days = 7", "attribution_days = 60"),
        encoding="utf-8",
    )
    reopened = Workspace.open(played.path)
    try:
        result = journey_results(reopened, "spring", START + 90 * DAYS)
    finally:
        reopened.close()
    steps = {step["id"]: step for step in result["steps"]}
    assert steps["offer"]["revenue"] == 50.0
    assert steps["miss-you"]["revenue"] == 20.0 + 30.0  # t4's purchase is in reach now
    assert result["conversions"] == 3
