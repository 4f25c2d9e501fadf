"""``winback score``: per-contact facts, RFM and stages for the whole base, in SQL.

Why SQL in the store, and not DuckDB. The bulk work runs as a handful of set-based
statements inside the store (SQLite or PostgreSQL), built with SQLAlchemy Core so one
definition compiles for both. Measured on 1M contacts / 20M events in SQLite (2 cores):
DuckDB would first have to read the events out of SQLite, and without network access its
``sqlite`` extension cannot be installed; reading them through ADBC into Arrow alone took
27 s, while SQLite's own scan of the events takes 5 s and the grouped aggregation of the
interaction events, sorted rather than walked through the (contact, time) index, fits in
the budget (see bench/score.py). On PostgreSQL the same statements run as parallel hash
aggregates.

The pipeline (one transaction):

1. *facts* per contact into a temporary table: last human interaction overall and per
   channel, first/last purchase, purchase count and spend, and the day of the last
   customer activity (the customer clock's anchor). Machine opens are left out with the
   rule of :mod:`winback.scoring.machine_open`, written here in SQL;
2. quintile breakpoints of recency, frequency and monetary value over the customers;
3. the derived row of every contact (clock, stage, RFM, spend level, flags), computed by
   ``CASE`` expressions that mirror :mod:`winback.scoring.stages`, with the estimates of
   the latest model fit (:func:`winback.models.apply.fill_estimates`) joined in;
4. the rows that changed are rewritten; every stage change is appended to
   ``stage_history`` and the audit log, dated with ``now``'s local date.

Incremental rescoring. Each run leaves an audit record (action ``score_run``) holding the
highest event id it saw and a fingerprint of the policy. The next run, under the same
policy, aggregates only the newer events and merges them into the stored facts (latest
of two times, sum of two counts; the customer clock's anchor is ``scored_at`` minus
``clock_days``). A contact whose history must be re-read is recomputed from all its
events: one without stored scores, a prospect whose new events make it a customer (its
past customer activity is not stored), and one whose new ``delivered`` event may turn an
already counted open into a machine open. Then every contact's row is derived again from
the facts and only the rows that differ (stage, flags, RFM, spend) or whose facts moved
are written, so a contact whose clock crossed a threshold is rewritten and the others
keep their row. ``days_inactive`` and ``clock_days`` are as of the row's ``scored_at``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
)

from winback.clock import to_db
from winback.compliance.audit import audit_row, record, record_selected
from winback.config import Config, ModelsSection
from winback.domain import INTERACTIONS, REFUSALS, Channel, ChannelStatus, EventType, Stage
from winback.models.apply import fill_estimates, model_estimates
from winback.scoring.machine_open import apple_proxy_user_agent_sql
from winback.scoring.sql import local_day, seconds_between
from winback.scoring.stages import (
    CONSENT_PRECEDENCE,
    WINBACK_STAGES,
    Policy,
    day_number,
    from_day_number,
)
from winback.store.schema import audit, contact_scores, contacts, events, stage_history

RUN_ACTION = "score_run"
ACTOR = "score"
CHANNEL_COLUMNS = tuple(channel.value for channel in Channel)
# What a stored row carries from the facts, and what marks a row as changed.
LAST_SEEN_COLUMNS = ("last_interaction_at", *(f"last_{c}_at" for c in CHANNEL_COLUMNS))
TIME_COLUMNS = (*LAST_SEEN_COLUMNS, "first_purchase_at", "last_purchase_at")
FACT_COLUMNS = (*TIME_COLUMNS, "purchases", "total_spend")
VERDICT_COLUMNS = (
    "stage",
    "dormant_subscriber",
    "recency_score",
    "frequency_score",
    "monetary_score",
    "spend_level",
)
_NO_BREAKPOINTS = (0.0, 0.0, 0.0, 0.0)

_temp = MetaData()
score_facts = Table(
    "score_facts",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    *(Column(name, DateTime) for name in TIME_COLUMNS),
    Column("purchases", Integer, nullable=False),
    Column("total_spend", Float, nullable=False),
    Column("activity_day", Integer),
    Column("last_event_id", Integer),
    prefixes=["TEMPORARY"],
)
score_delta = Table(
    "score_delta",
    _temp,
    *(Column(c.name, c.type, primary_key=c.primary_key) for c in score_facts.columns),
    prefixes=["TEMPORARY"],
)
score_redo = Table(
    "score_redo",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    prefixes=["TEMPORARY"],
)
score_new = Table(
    "score_new",
    _temp,
    *(
        Column(c.name, c.type, primary_key=c.primary_key)
        for c in contact_scores.columns
        if c.name != "contact_id"
    ),
    Column("contact_id", Integer, primary_key=True),
    Column("old_stage", String(16)),
    Column("rewrite", Boolean, nullable=False),
    prefixes=["TEMPORARY"],
)
_TEMP_TABLES = (score_facts, score_delta, score_redo, score_new, model_estimates)


@dataclass
class ScoreResult:
    """What a scoring run did: ``mode`` is ``full`` or ``incremental``."""

    now: datetime
    mode: str
    reason: str
    contacts: int
    rewritten: int
    stage_changes: int
    new_events: int | None
    stages: dict[str, int] = field(default_factory=dict)
    models: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "mode": self.mode,
            "reason": self.reason,
            "contacts": self.contacts,
            "rewritten": self.rewritten,
            "stage_changes": self.stage_changes,
            "new_events": self.new_events,
            "stages": self.stages,
            "models": self.models,
        }


@dataclass(frozen=True)
class _Run:
    """The fixed inputs of one run."""

    policy: Policy
    timezone: str
    machine_open_seconds: int
    now: datetime
    models: ModelsSection = field(default_factory=ModelsSection)

    @property
    def now_day(self) -> int:
        return day_number(self.now, ZoneInfo(self.timezone))

    def fingerprint(self) -> str:
        """What stored facts depend on: a change forces a full score."""
        text = json.dumps(
            {
                "activity": sorted(self.policy.customer_activity),
                "tz": self.timezone,
                "machine_open_seconds": self.machine_open_seconds,
                "version": 1,
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def score_base(engine: Engine, config: Config, now: datetime, *, full: bool = False) -> ScoreResult:
    """Score every contact of the base at ``now`` (aware). Incremental when a previous run
    under the same policy exists, unless ``full``. One transaction: readers see the old
    scores or the new ones."""
    run = _Run(
        policy=Policy.from_config(config.policy),
        timezone=config.workspace.timezone,
        machine_open_seconds=config.scoring.machine_open_seconds,
        now=now,
        models=config.models,
    )
    with engine.begin() as connection:
        return _score(connection, run, full=full)


def _score(connection: Connection, run: _Run, *, full: bool = False) -> ScoreResult:
    """:func:`score_base` inside the caller's transaction."""
    for table in _TEMP_TABLES:
        table.drop(connection, checkfirst=True)
        table.create(connection)
    try:
        high_water = connection.execute(select(func.max(events.c.id))).scalar() or 0
        previous = _last_run(connection)
        reason = _full_reason(previous, run, full)
        if reason:
            mode, new_events = "full", None
            _full_facts(connection, run)
        else:
            assert previous is not None
            mode = "incremental"
            new_events = _merged_facts(connection, run, int(previous["high_water"]), high_water)
            reason = f"{new_events} new events since event {previous['high_water']}"
        breakpoints = _breakpoints(connection, run)
        models = fill_estimates(connection, run.models, run.now)
        _derive(connection, run, breakpoints, rewrite_all=mode == "full")
        total, changes, rewritten = _write(connection, run)
        stages: dict[Any, Any] = dict(
            connection.execute(
                select(contact_scores.c.stage, func.count()).group_by(contact_scores.c.stage)
            ).all()
        )
        details = {
            "high_water": high_water,
            "fingerprint": run.fingerprint(),
            "mode": mode,
            "rewritten": rewritten,
            "stage_changes": changes,
            "now": run.now.isoformat(),
        }
        record(
            connection,
            [
                audit_row(
                    at=run.now,
                    actor=ACTOR,
                    action=RUN_ACTION,
                    reason=f"{mode} score",
                    details=details,
                )
            ],
        )
    finally:
        for table in _TEMP_TABLES:
            table.drop(connection, checkfirst=True)
    return ScoreResult(
        now=run.now,
        mode=mode,
        reason=reason,
        contacts=int(total),
        rewritten=rewritten,
        stage_changes=changes,
        new_events=new_events,
        stages={str(k): int(v) for k, v in sorted(stages.items())},
        models=models,
    )


def _last_run(connection: Connection) -> dict[str, Any] | None:
    details = connection.execute(
        select(audit.c.details)
        .where(audit.c.action == RUN_ACTION, audit.c.contact_id.is_(None))
        .order_by(audit.c.id.desc())
        .limit(1)
    ).scalar()
    return dict(details) if details else None


def _full_reason(previous: dict[str, Any] | None, run: _Run, full: bool) -> str:
    if full:
        return "full score requested"
    if previous is None:
        return "first score of this base"
    if previous.get("fingerprint") != run.fingerprint():
        return "the policy, time zone or machine-open rule changed since the last score"
    return ""


# --- 1. facts ----------------------------------------------------------------------


def _facts_select(run: _Run, where: Callable[[Any], Sequence[Any]] = lambda e: ()) -> Select[Any]:
    """Per-contact facts from the events for which ``where(e)`` holds (``e``: the alias of
    the events table the query reads)."""
    e = events.alias("e")
    d = events.alias("d")
    delivered_just_before = exists(
        select(literal(1))
        .select_from(d)
        .where(
            *_same_message(d, e),
            d.c.type == EventType.DELIVERED.value,
            seconds_between(d.c.occurred_at, e.c.occurred_at).between(0, run.machine_open_seconds),
        )
    )
    machine = or_(
        e.c.machine_open.is_(True),
        and_(
            e.c.machine_open.is_(None),
            or_(
                apple_proxy_user_agent_sql(e.c.user_agent),
                and_(e.c.message_id.is_not(None), delivered_just_before),
            ),
        ),
    )
    human = case(
        (e.c.type == EventType.OPEN.value, case((machine, 0), else_=1)),
        (
            e.c.type == EventType.CLICK.value,
            case((e.c.bot.is_(True), 0), else_=1),
        ),
        (e.c.type.in_(sorted(INTERACTIONS - {EventType.OPEN, EventType.CLICK})), 1),
        else_=0,
    )
    activity_types = sorted(run.policy.customer_activity)
    relevant = sorted({str(t) for t in INTERACTIONS} | run.policy.customer_activity)
    inner = (
        select(
            e.c.id,
            # +0: group by a value, not the column, so SQLite sorts the matching rows
            # instead of walking the whole (contact, time) index with a table lookup each.
            (e.c.contact_id + 0).label("contact_id"),
            e.c.type,
            e.c.channel,
            e.c.occurred_at,
            e.c.amount,
            human.label("human"),
        )
        .where(e.c.type.in_(relevant), *where(e))
        # OFFSET 0 keeps this a subquery (SQLite would otherwise inline it and run the
        # machine-open test once per aggregate that reads ``human``).
        .offset(0)
        .subquery("x")
    )
    x = inner.c
    is_purchase = x.type == EventType.PURCHASE.value
    interaction_types = sorted(str(t) for t in INTERACTIONS)
    activity = and_(
        x.type.in_(activity_types),
        or_(x.human == 1, not_(x.type.in_(interaction_types))),
    )
    columns: list[ColumnElement[Any]] = [
        x.contact_id.label("contact_id"),
        func.max(case((x.human == 1, x.occurred_at))).label("last_interaction_at"),
    ]
    for channel in CHANNEL_COLUMNS:
        columns.append(
            func.max(case((and_(x.human == 1, x.channel == channel), x.occurred_at))).label(
                f"last_{channel}_at"
            )
        )
    columns += [
        func.min(case((is_purchase, x.occurred_at))).label("first_purchase_at"),
        func.max(case((is_purchase, x.occurred_at))).label("last_purchase_at"),
        func.sum(case((is_purchase, 1), else_=0)).label("purchases"),
        func.coalesce(func.sum(case((is_purchase, x.amount))), 0.0).label("total_spend"),
        local_day(func.max(case((activity, x.occurred_at))), run.timezone).label("activity_day"),
        func.max(x.id).label("last_event_id"),
    ]
    return select(*columns).group_by(x.contact_id)


def _same_message(a: Any, b: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """Two aliases of ``events`` are about the same message to the same contact."""
    return (a.c.message_id == b.c.message_id, a.c.contact_id == b.c.contact_id)


def _full_facts(connection: Connection, run: _Run) -> None:
    query = _facts_select(run)
    connection.execute(insert(score_facts).from_select(list(query.selected_columns.keys()), query))


def _merged_facts(connection: Connection, run: _Run, since: int, high_water: int) -> int:
    """Stored facts merged with those of the events ``since < id <= high_water``;
    returns the number of new events."""
    count = connection.execute(
        select(func.count())
        .select_from(events)
        .where(events.c.id > since, events.c.id <= high_water)
    ).scalar_one()
    delta = _facts_select(run, lambda e: (e.c.id > since, e.c.id <= high_water))
    connection.execute(insert(score_delta).from_select(list(delta.selected_columns.keys()), delta))

    old = contact_scores
    o = events.alias("o")
    dd = events.alias("dd")
    reclassified = (
        select(dd.c.contact_id)
        .where(
            dd.c.id > since,
            dd.c.id <= high_water,
            dd.c.type == EventType.DELIVERED.value,
            dd.c.message_id.is_not(None),
            exists(
                select(literal(1))
                .select_from(o)
                .where(
                    *_same_message(o, dd),
                    o.c.type == EventType.OPEN.value,
                    o.c.id <= since,
                    o.c.machine_open.is_(None),
                )
            ),
        )
        .distinct()
    )
    became_customer = (
        select(score_delta.c.contact_id)
        .select_from(score_delta.join(old, old.c.contact_id == score_delta.c.contact_id))
        .where(old.c.purchases == 0, score_delta.c.purchases > 0)
    )
    unscored = (
        select(contacts.c.id)
        .select_from(contacts.outerjoin(old, old.c.contact_id == contacts.c.id))
        .where(old.c.contact_id.is_(None), contacts.c.erased_at.is_(None))
    )
    redo = reclassified.union(became_customer, unscored).subquery()
    connection.execute(insert(score_redo).from_select(["contact_id"], select(redo.c[0])))
    again = _facts_select(run, lambda e: (e.c.contact_id.in_(select(score_redo.c.contact_id)),))
    connection.execute(insert(score_facts).from_select(list(again.selected_columns.keys()), again))

    d = score_delta.c
    old_anchor = case(
        (old.c.purchases > 0, local_day(old.c.scored_at, run.timezone) - old.c.clock_days),
    )
    merged: list[ColumnElement[Any]] = [old.c.contact_id]
    for name in LAST_SEEN_COLUMNS:
        merged.append(_later(old.c[name], d[name]).label(name))
    merged += [
        _earlier(old.c.first_purchase_at, d.first_purchase_at).label("first_purchase_at"),
        _later(old.c.last_purchase_at, d.last_purchase_at).label("last_purchase_at"),
        (old.c.purchases + func.coalesce(d.purchases, 0)).label("purchases"),
        (old.c.total_spend + func.coalesce(d.total_spend, 0.0)).label("total_spend"),
        _later(old_anchor, d.activity_day).label("activity_day"),
        _later(old.c.last_event_id, d.last_event_id).label("last_event_id"),
    ]
    keep = (
        select(*merged)
        .select_from(old.outerjoin(score_delta, score_delta.c.contact_id == old.c.contact_id))
        .where(old.c.contact_id.not_in(select(score_redo.c.contact_id)))
    )
    connection.execute(insert(score_facts).from_select(list(keep.selected_columns.keys()), keep))
    return int(count)


def _later(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    """The greater of two nullable values (NULL only when both are)."""
    return case((b.is_(None), a), (a.is_(None), b), (b > a, b), else_=a)


def _earlier(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((b.is_(None), a), (a.is_(None), b), (b < a, b), else_=a)


# --- 2. RFM breakpoints ------------------------------------------------------------


@dataclass(frozen=True)
class Breakpoints:
    """Quintile breakpoints (20/40/60/80th percentiles, ``percentile_disc``) over the
    customers: recency on the day of the last purchase, frequency on the number of
    purchases, monetary on the total spend."""

    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]


def _breakpoints(connection: Connection, run: _Run) -> Breakpoints:
    f = score_facts.c
    customers = connection.execute(
        select(func.count()).select_from(score_facts).where(f.purchases > 0)
    ).scalar_one()
    if not customers:
        return Breakpoints(_NO_BREAKPOINTS, _NO_BREAKPOINTS, _NO_BREAKPOINTS)
    ranks = [math.ceil(p * customers) for p in (0.2, 0.4, 0.6, 0.8)]
    result = []
    for value in (local_day(f.last_purchase_at, run.timezone), f.purchases, f.total_spend):
        ranked = (
            select(value.label("value"), func.row_number().over(order_by=value).label("rank"))
            .where(f.purchases > 0)
            .subquery()
        )
        rows = dict(
            connection.execute(
                select(ranked.c.rank, ranked.c.value).where(ranked.c.rank.in_(ranks))
            ).all()
        )
        result.append(tuple(float(rows[rank]) for rank in ranks))
    return Breakpoints(*result)


# --- 3. derived rows -----------------------------------------------------------------


def every_address_refused(
    email_status: ColumnElement[Any], sms_status: ColumnElement[Any]
) -> ColumnElement[bool]:
    """SQL for the consent rule of :func:`winback.scoring.stages.consent_stage`: the
    contact has at least one address, and every address it has is refused."""
    refused = sorted(REFUSALS)
    none = ChannelStatus.NONE.value
    email_known, sms_known = email_status != none, sms_status != none
    return and_(
        or_(email_known, sms_known),
        or_(not_(email_known), email_status.in_(refused)),
        or_(not_(sms_known), sms_status.in_(refused)),
    )


def _quintile(value: ColumnElement[Any], points: Sequence[float]) -> ColumnElement[Any]:
    score: ColumnElement[Any] = literal(1)
    for point in points:
        score = score + case((value > point, 1), else_=0)
    return score


def _derive(connection: Connection, run: _Run, points: Breakpoints, *, rewrite_all: bool) -> None:
    """Fill ``score_new`` with every contact's row, marking those to write."""
    policy, tz = run.policy, run.timezone
    c, f, old = contacts, score_facts, contact_scores
    today = from_day_number(run.now_day)
    base = (
        select(
            c.c.id.label("contact_id"),
            *(f.c[name] for name in TIME_COLUMNS),
            func.coalesce(f.c.purchases, 0).label("purchases"),
            func.coalesce(f.c.total_spend, 0.0).label("total_spend"),
            f.c.activity_day,
            f.c.last_event_id,
            local_day(c.c.created_at, tz).label("created_day"),
            local_day(f.c.last_interaction_at, tz).label("interaction_day"),
            local_day(f.c.last_purchase_at, tz).label("purchase_day"),
            c.c.email_status,
            c.c.sms_status,
            c.c.lost_by_journey_at,
            c.c.subscription_active,
            old.c.contact_id.label("old_id"),
            old.c.stage.label("old_stage"),
            old.c.stage_since.label("old_stage_since"),
            *(old.c[name].label(f"old_{name}") for name in VERDICT_COLUMNS[1:]),
            old.c.p_alive.label("old_p_alive"),
            model_estimates.c.p_alive,
            model_estimates.c.stage_p_alive,
            model_estimates.c.expected_purchases_90d,
            model_estimates.c.expected_value_12m,
            or_(score_delta.c.contact_id.is_not(None), score_redo.c.contact_id.is_not(None)).label(
                "touched"
            ),
        )
        .select_from(
            c.outerjoin(f, f.c.contact_id == c.c.id)
            .outerjoin(old, old.c.contact_id == c.c.id)
            .outerjoin(score_delta, score_delta.c.contact_id == c.c.id)
            .outerjoin(score_redo, score_redo.c.contact_id == c.c.id)
            .outerjoin(model_estimates, model_estimates.c.contact_id == c.c.id)
        )
        .where(c.c.erased_at.is_(None))
        .subquery("a")
    )
    a = base.c
    is_customer = a.purchases > 0
    anchor = case(
        (and_(is_customer, a.activity_day.is_not(None)), a.activity_day),
        (
            and_(a.interaction_day.is_not(None), a.interaction_day > a.created_day),
            a.interaction_day,
        ),
        else_=a.created_day,
    )
    clock_days = literal(run.now_day) - anchor
    *stronger, weakest = CONSENT_PRECEDENCE
    consent = case(
        *(
            (or_(a.email_status == stage.value, a.sms_status == stage.value), stage.value)
            for stage in stronger
        ),
        else_=weakest.value,
    )
    by_clock = case(
        (clock_days >= policy.lost_after, Stage.LOST.value),
        (clock_days >= policy.dormant_after, Stage.DORMANT.value),
        (clock_days >= policy.at_risk_after, Stage.AT_RISK.value),
        (is_customer, Stage.ACTIVE.value),
        else_=Stage.PROSPECT.value,
    )
    whens: list[tuple[Any, Any]] = [
        (every_address_refused(a.email_status, a.sms_status), consent),
        (
            and_(
                a.lost_by_journey_at.is_not(None),
                or_(
                    a.last_interaction_at.is_(None),
                    a.last_interaction_at <= a.lost_by_journey_at,
                ),
            ),
            Stage.LOST.value,
        ),
    ]
    if policy.clock == "p_alive":
        # winback.scoring.stages.p_alive_stage, in SQL.
        by_p_alive = case(
            (a.stage_p_alive < policy.lost_p_alive, Stage.LOST.value),
            (a.stage_p_alive < policy.dormant_p_alive, Stage.DORMANT.value),
            (a.stage_p_alive < policy.at_risk_p_alive, Stage.AT_RISK.value),
            else_=Stage.ACTIVE.value,
        )
        whens.append((and_(is_customer, a.stage_p_alive.is_not(None)), by_p_alive))
    stage = case(*whens, else_=by_clock)
    staged = select(
        base,
        clock_days.label("clock_days"),
        (literal(run.now_day) - a.interaction_day).label("days_inactive"),
        stage.label("stage"),
        case((is_customer, _quintile(a.purchase_day, points.recency))).label("recency_score"),
        case((is_customer, _quintile(a.purchases, points.frequency))).label("frequency_score"),
        case((is_customer, _quintile(a.total_spend, points.monetary))).label("monetary_score"),
    ).subquery("b")
    b = staged.c
    protected = and_(
        literal(policy.protect_subscribers),
        b.subscription_active.is_(True),
        b.stage.in_(sorted(s.value for s in WINBACK_STAGES)),
    )
    spend = case(
        (b.monetary_score <= 2, "low"),
        (b.monetary_score <= 4, "medium"),
        (b.monetary_score.is_not(None), "high"),
    )
    differs = or_(
        b.old_id.is_(None),
        b.touched,
        b.old_stage != b.stage,
        b.old_p_alive.is_distinct_from(b.p_alive),
        *(
            b[f"old_{name}"].is_distinct_from(value)
            for name, value in (
                ("dormant_subscriber", protected),
                ("recency_score", b.recency_score),
                ("frequency_score", b.frequency_score),
                ("monetary_score", b.monetary_score),
                ("spend_level", spend),
            )
        ),
    )
    final = select(
        b.contact_id,
        literal(to_db(run.now)).label("scored_at"),
        *(b[name] for name in FACT_COLUMNS),
        b.last_event_id,
        b.days_inactive,
        case((b.purchases > 0, b.total_spend / b.purchases)).label("avg_spend"),
        b.recency_score,
        b.frequency_score,
        b.monetary_score,
        spend.label("spend_level"),
        b.clock_days,
        b.stage,
        case((b.old_stage == b.stage, b.old_stage_since), else_=literal(today)).label(
            "stage_since"
        ),
        protected.label("dormant_subscriber"),
        b.p_alive,
        b.expected_purchases_90d,
        b.expected_value_12m,
        b.old_stage,
        (literal(True) if rewrite_all else differs).label("rewrite"),
    )
    connection.execute(insert(score_new).from_select(list(final.selected_columns.keys()), final))


# --- 4. writing ------------------------------------------------------------------------


def _write(connection: Connection, run: _Run) -> tuple[int, int, int]:
    """Write the rows marked ``rewrite``; returns (contacts, stage changes, rows written)."""
    n = score_new.c
    today = from_day_number(run.now_day)
    changed = and_(n.rewrite.is_(True), or_(n.old_stage.is_(None), n.old_stage != n.stage))
    connection.execute(
        insert(stage_history).from_select(
            ["contact_id", "from_stage", "to_stage", "changed_on"],
            select(n.contact_id, n.old_stage, n.stage, literal(today, Date)).where(changed),
        )
    )
    record_selected(
        connection,
        select(
            n.contact_id,
            (func.coalesce(n.old_stage, "none") + literal(" -> ") + n.stage).label("reason"),
        ).where(changed),
        at=run.now,
        actor=ACTOR,
        action="stage_change",
    )
    connection.execute(
        delete(contact_scores).where(
            or_(
                contact_scores.c.contact_id.in_(select(n.contact_id).where(n.rewrite.is_(True))),
                contact_scores.c.contact_id.in_(
                    select(contacts.c.id).where(contacts.c.erased_at.is_not(None))
                ),
            )
        )
    )
    columns = [column.name for column in contact_scores.columns]
    connection.execute(
        insert(contact_scores).from_select(
            columns, select(*(n[name] for name in columns)).where(n.rewrite.is_(True))
        )
    )
    total, changes, rewritten = connection.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((changed, 1), else_=0)), 0),
            func.coalesce(func.sum(case((n.rewrite.is_(True), 1), else_=0)), 0),
        ).select_from(score_new)
    ).one()
    return int(total), int(changes), int(rewritten)
