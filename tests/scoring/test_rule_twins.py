"""Each rule's Python and its SQL twin give the same answer, on SQLite and PostgreSQL.

One test per rule module: stages and clocks, consent, protection of paying subscribers,
RFM, machine opens, human interaction. The row-by-row paths (tracking, the tick, the
reference of the scoring tests) use the Python; the bulk scoring and the reports use the
SQL; these tests are what keeps the two spellings one rule.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    case,
    create_engine,
    insert,
    select,
)

from tests.scoring.test_machine_open import PEOPLE, PROXIES
from winback.domain import ChannelStatus, EventType, Stage
from winback.scoring.consent import consent_stage, consent_stage_sql, every_address_refused
from winback.scoring.interaction import human_interaction_sql, is_human_interaction
from winback.scoring.machine_open import is_machine_open, machine_open_sql
from winback.scoring.protection import is_protected, protected_sql
from winback.scoring.rfm import (
    breakpoints_of,
    quintile_breakpoints,
    quintile_score,
    quintile_sql,
    spend_level,
    spend_level_sql,
)
from winback.scoring.stages import (
    Policy,
    clock_anchor,
    clock_anchor_sql,
    day_number,
    decide_stage,
    stage_sql,
)
from winback.store.schema import contacts, events, metadata

STATUSES = [status.value for status in ChannelStatus]
T0 = datetime(2024, 3, 30, 22, 0, 0)
TIMEZONE = "Europe/Paris"
_keys = itertools.count()

scratch = MetaData()
# One row of plain inputs, the columns a rule's SQL reads.
inputs = Table(
    "rule_inputs",
    scratch,
    Column("id", Integer, primary_key=True),
    Column("email_status", String(12)),
    Column("sms_status", String(12)),
    Column("stage", String(16)),
    Column("kind", String(16)),
    Column("is_customer", Boolean),
    Column("subscription_active", Boolean),
    Column("machine_open", Boolean),
    Column("bot", Boolean),
    Column("clock_days", Integer),
    Column("activity_day", Integer),
    Column("created_day", Integer),
    Column("interaction_day", Integer),
    Column("monetary_score", Integer),
    Column("p_alive", Float),
    Column("value", Float),
    Column("lost_by_journey_at", DateTime),
    Column("last_interaction_at", DateTime),
)
rfm_facts = Table(
    "rfm_facts",
    scratch,
    Column("contact_id", Integer, primary_key=True),
    Column("purchases", Integer, nullable=False),
    Column("total_spend", Float, nullable=False),
    Column("last_purchase_at", DateTime),
)
twin_settings = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def db(backend: str, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty database with the store's tables and the scratch tables above."""
    url = "sqlite://" if backend == "sqlite" else request.getfixturevalue("pg_url")
    engine = create_engine(url)
    metadata.create_all(engine)
    scratch.create_all(engine)
    yield engine
    engine.dispose()


def evaluate(db: Engine, row: dict[str, Any], rule: Callable[[Any], ColumnElement[Any]]) -> Any:
    """The value of ``rule(inputs.c)`` on one row of inputs (rolled back after)."""
    with db.connect() as connection, connection.begin() as transaction:
        connection.execute(insert(inputs), {"id": 1, **row})
        value = connection.execute(select(rule(inputs.c))).scalar()
        transaction.rollback()
    return value


def test_consent_twins_agree_on_every_pair_of_statuses(db: Engine) -> None:
    for email, sms in itertools.product(STATUSES, STATUSES):
        python = consent_stage(email, sms)
        sql = evaluate(
            db,
            {"email_status": email, "sms_status": sms},
            lambda c: case(
                (
                    every_address_refused(c.email_status, c.sms_status),
                    consent_stage_sql(c.email_status, c.sms_status),
                )
            ),
        )
        assert sql == (None if python is None else python.value), (email, sms)


def test_protection_twins_agree_on_every_stage(db: Engine) -> None:
    for protect in (True, False):

        def rule(c: Any, protect: bool = protect) -> ColumnElement[bool]:
            return protected_sql(c.stage, c.subscription_active, protect_subscribers=protect)

        for stage, active in itertools.product(Stage, (True, False)):
            python = is_protected(stage, subscription_active=active, protect_subscribers=protect)
            sql = evaluate(db, {"stage": stage.value, "subscription_active": active}, rule)
            assert bool(sql) is python, (stage, active, protect)


days = st.integers(-5, 700)
moments = st.one_of(
    st.none(), st.integers(0, 20).map(lambda n: T0 + timedelta(hours=n * 7, seconds=n % 2))
)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    at_risk, dormant, lost = sorted(draw(st.lists(days, min_size=3, max_size=3)))
    p_lost, p_dormant, p_at_risk = sorted(
        draw(st.lists(st.sampled_from((0.1, 0.3, 0.5, 0.7)), min_size=3, max_size=3))
    )
    return Policy(
        customer_activity=frozenset({"purchase"}),
        at_risk_after=at_risk,
        dormant_after=dormant,
        lost_after=lost,
        protect_subscribers=draw(st.booleans()),
        clock=draw(st.sampled_from(("days", "p_alive"))),
        at_risk_p_alive=p_at_risk,
        dormant_p_alive=p_dormant,
        lost_p_alive=p_lost,
    )


@twin_settings
@given(
    policy=policies(),
    is_customer=st.booleans(),
    clock_days=days,
    email=st.sampled_from(STATUSES),
    sms=st.sampled_from(STATUSES),
    lost_at=moments,
    last_at=moments,
    subscription_active=st.booleans(),
    p_alive=st.one_of(st.none(), st.sampled_from((0.0, 0.1, 0.2, 0.3, 0.5, 0.69, 0.7, 1.0))),
    activity_day=st.one_of(st.none(), days),
    created_day=days,
    interaction_day=st.one_of(st.none(), days),
)
def test_stage_and_clock_twins_agree(
    db: Engine,
    policy: Policy,
    is_customer: bool,
    clock_days: int,
    email: str,
    sms: str,
    lost_at: datetime | None,
    last_at: datetime | None,
    subscription_active: bool,
    p_alive: float | None,
    activity_day: int | None,
    created_day: int,
    interaction_day: int | None,
) -> None:
    stage, protected = decide_stage(
        is_customer=is_customer,
        clock_days=clock_days,
        email_status=email,
        sms_status=sms,
        lost_by_journey_at=lost_at,
        last_interaction_at=last_at,
        subscription_active=subscription_active,
        policy=policy,
        p_alive=p_alive,
    )
    row = {
        "is_customer": is_customer,
        "clock_days": clock_days,
        "email_status": email,
        "sms_status": sms,
        "lost_by_journey_at": lost_at,
        "last_interaction_at": last_at,
        "subscription_active": subscription_active,
        "p_alive": p_alive,
        "activity_day": activity_day,
        "created_day": created_day,
        "interaction_day": interaction_day,
    }

    def sql_stage(c: Any) -> ColumnElement[Any]:
        return stage_sql(
            is_customer=c.is_customer.is_(True),
            clock_days=c.clock_days,
            email_status=c.email_status,
            sms_status=c.sms_status,
            lost_by_journey_at=c.lost_by_journey_at,
            last_interaction_at=c.last_interaction_at,
            policy=policy,
            p_alive=c.p_alive,
        )

    assert evaluate(db, row, sql_stage) == stage.value
    sql_protected = evaluate(
        db,
        row,
        lambda c: protected_sql(
            sql_stage(c), c.subscription_active, protect_subscribers=policy.protect_subscribers
        ),
    )
    assert bool(sql_protected) is protected
    anchor = clock_anchor(
        is_customer=is_customer,
        activity_day=activity_day,
        created_day=created_day,
        interaction_day=interaction_day,
    )
    sql_anchor = evaluate(
        db,
        row,
        lambda c: clock_anchor_sql(
            is_customer=c.is_customer.is_(True),
            activity_day=c.activity_day,
            created_day=c.created_day,
            interaction_day=c.interaction_day,
        ),
    )
    assert sql_anchor == anchor


customers = st.lists(
    st.tuples(
        st.integers(1, 6),
        st.sampled_from((5.0, 9.99, 20.0, 20.0, 150.5)),
        st.integers(0, 60).map(lambda n: T0 + timedelta(hours=n * 5)),
    ),
    max_size=12,
)


@twin_settings
@given(facts=customers, prospects=st.integers(0, 2), value=st.sampled_from((0, 1, 5, 20, 9.99)))
def test_rfm_twins_agree(
    db: Engine, facts: list[tuple[int, float, datetime]], prospects: int, value: float
) -> None:
    rows = [
        {"contact_id": i, "purchases": n, "total_spend": spend, "last_purchase_at": at}
        for i, (n, spend, at) in enumerate(facts)
    ]
    rows += [
        {"contact_id": len(facts) + i, "purchases": 0, "total_spend": 0.0, "last_purchase_at": None}
        for i in range(prospects)
    ]
    with db.connect() as connection, connection.begin() as transaction:
        if rows:
            connection.execute(insert(rfm_facts), rows)
        points = breakpoints_of(connection, rfm_facts, TIMEZONE)
        transaction.rollback()
    tz = ZoneInfo(TIMEZONE)
    expected = {
        "recency": quintile_breakpoints(day_number(at, tz) for _, _, at in facts),
        "frequency": quintile_breakpoints(n for n, _, _ in facts),
        "monetary": quintile_breakpoints(spend for _, spend, _ in facts),
    }
    assert points.customers == len(facts)
    for name, python in expected.items():
        if python is not None:
            assert getattr(points, name) == tuple(float(p) for p in python), name
    for breakpoints in (points.frequency, points.monetary):
        score = quintile_score(value, breakpoints)

        def quintile(c: Any, cuts: tuple[float, ...] = breakpoints) -> ColumnElement[Any]:
            return quintile_sql(c.value, cuts)

        assert evaluate(db, {"value": value}, quintile) == score
        level = evaluate(db, {"monetary_score": score}, lambda c: spend_level_sql(c.monetary_score))
        assert level == spend_level(score)
    assert evaluate(db, {}, lambda c: spend_level_sql(c.monetary_score)) is None


@twin_settings
@given(
    flag=st.sampled_from((None, None, None, True, False)),
    user_agent=st.one_of(st.sampled_from(PEOPLE), st.sampled_from(PROXIES)),
    message_id=st.sampled_from((None, "m1", "m1")),
    delivered_message=st.sampled_from((None, "m1", "m1", "m2", "none")),
    # Around the delivery or around the end of the window: the edges are what differ.
    near_the_end=st.booleans(),
    offset_ms=st.integers(-1500, 1500),
    seconds=st.integers(0, 10),
)
def test_machine_open_twins_agree(
    db: Engine,
    flag: bool | None,
    user_agent: str | None,
    message_id: str | None,
    delivered_message: str | None,
    near_the_end: bool,
    offset_ms: int,
    seconds: int,
) -> None:
    opened_at = T0 + timedelta(milliseconds=offset_ms + (seconds * 1000 if near_the_end else 0))
    same_message = delivered_message not in ("none", None) and delivered_message == message_id
    python = is_machine_open(
        flag=flag,
        user_agent=user_agent,
        opened_at=opened_at,
        delivered_at=T0 if same_message else None,
        machine_open_seconds=seconds,
    )
    with db.connect() as connection, connection.begin() as transaction:
        open_id = _add_open_and_delivery(
            connection, flag, user_agent, message_id, delivered_message, opened_at
        )
        o, d = events.alias("o"), events.alias("d")
        sql = connection.execute(
            select(machine_open_sql(o, d, seconds)).select_from(o).where(o.c.id == open_id)
        ).scalar()
        transaction.rollback()
    assert bool(sql) is python


def _add_open_and_delivery(
    connection: Connection,
    flag: bool | None,
    user_agent: str | None,
    message_id: str | None,
    delivered_message: str | None,
    opened_at: datetime,
) -> int:
    """One contact, an open, and (unless ``delivered_message`` is "none") a delivery of
    ``delivered_message`` at T0; returns the open's id."""
    contact_id = connection.execute(
        insert(contacts).returning(contacts.c.id), {"created_at": T0, "updated_at": T0}
    ).scalar_one()

    def add(kind: str, at: datetime, message: str | None, **more: Any) -> int:
        key = next(_keys).to_bytes(16, "big")
        values = {"contact_id": contact_id, "type": kind, "channel": "email", "dedup_key": key}
        return int(
            connection.execute(
                insert(events).returning(events.c.id),
                {**values, "occurred_at": at, "message_id": message, **more},
            ).scalar_one()
        )

    if delivered_message != "none":
        add("delivered", T0, delivered_message)
    return add("open", opened_at, message_id, machine_open=flag, user_agent=user_agent)


@twin_settings
@given(
    kind=st.sampled_from([kind.value for kind in EventType]),
    machine_open=st.booleans(),
    bot=st.sampled_from((None, True, False)),
)
def test_human_interaction_twins_agree(
    db: Engine, kind: str, machine_open: bool, bot: bool | None
) -> None:
    python = is_human_interaction(kind, machine_open=machine_open, bot=bot)
    sql = evaluate(
        db,
        {"kind": kind, "machine_open": machine_open, "bot": bot},
        lambda c: human_interaction_sql(c.kind, machine_open=c.machine_open.is_(True), bot=c.bot),
    )
    assert sql == int(python)
