"""From the facts to the stored scores: every contact's derived row, then the write.

:func:`derive_and_write` reads :data:`winback.scoring.facts.score_facts` (whoever filled
it), joins each contact's record, its stored row and the estimates of the latest model
fit (:func:`winback.models.apply.fill_estimates`), and computes the clock, the stage, RFM,
the spend level, the ``dormant_subscriber`` flag and the day of the next clock threshold,
with the SQL twins of the rules (:mod:`~winback.scoring.stages`,
:mod:`~winback.scoring.consent`, :mod:`~winback.scoring.protection`,
:mod:`~winback.scoring.rfm`). It then replaces the stored rows, and appends every stage
change to ``stage_history`` and the audit log, dated with ``now``'s local date.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Integer,
    Select,
    String,
    Table,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from winback.clock import to_db
from winback.compliance.audit import record_selected
from winback.models.apply import model_estimates
from winback.scoring.facts import FACT_COLUMNS, TIME_COLUMNS, score_facts, score_touch, temporary
from winback.scoring.protection import protected_sql
from winback.scoring.rfm import Breakpoints, quintile_sql, spend_level_sql
from winback.scoring.sql_functions import day_date, local_day
from winback.scoring.stages import clock_anchor_sql, from_day_number, stage_sql
from winback.store.schema import contact_scores, contacts, stage_history

if TYPE_CHECKING:
    from winback.scoring.run import ScoreRun

ACTOR = "score"
# What an incremental run compares to tell whether a touched contact's row changed: all
# but the clocks and the event watermark, which are as of the row's ``scored_at``.
KEPT_COLUMNS = tuple(
    c.name
    for c in contact_scores.columns
    if c.name not in ("contact_id", "scored_at", "last_event_id", "days_inactive", "clock_days")
)
score_new = Table(
    "score_new",
    temporary,
    *(
        Column(c.name, c.type, primary_key=c.primary_key)
        for c in contact_scores.columns
        if c.name != "contact_id"
    ),
    Column("contact_id", Integer, primary_key=True),
    Column("old_stage", String(16)),
    prefixes=["TEMPORARY"],
)


def derive_and_write(
    connection: Connection, run: ScoreRun, breakpoints: Breakpoints, *, full: bool
) -> tuple[int, int]:
    """Derive the rows of the contacts to rewrite (every contact on a ``full`` score,
    else those in ``score_touch``) from :data:`~winback.scoring.facts.score_facts` and
    write them. Returns (stage changes, rows written)."""
    final = derive_select(run, breakpoints, rewrite_all=full)
    connection.execute(insert(score_new).from_select(list(final.selected_columns.keys()), final))
    return write_rows(connection, run, full=full)


def derive_select(run: ScoreRun, points: Breakpoints, *, rewrite_all: bool) -> Select[Any]:
    """The rows of :data:`score_new` (every contact not erased when ``rewrite_all``,
    else those in ``score_touch``), from ``contacts``, ``score_facts``, the stored rows
    and the model's estimates: one select, which another engine holding those tables
    may run as well."""
    policy, tz = run.policy, run.timezone
    c, f, old = contacts, score_facts, contact_scores
    today = from_day_number(run.now_day)
    # IN rather than a join: SQLite then looks the touched contacts up by id instead of
    # scanning them all.
    scored = [] if rewrite_all else [c.c.id.in_(select(score_touch.c.contact_id))]
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
            old.c.stage.label("old_stage"),
            old.c.stage_since.label("old_stage_since"),
            model_estimates.c.p_alive,
            model_estimates.c.stage_p_alive,
            model_estimates.c.expected_purchases_90d,
            model_estimates.c.expected_value_12m,
        )
        .select_from(
            c.outerjoin(f, f.c.contact_id == c.c.id)
            .outerjoin(old, old.c.contact_id == c.c.id)
            .outerjoin(model_estimates, model_estimates.c.contact_id == c.c.id)
        )
        .where(c.c.erased_at.is_(None), *scored)
        .subquery("a")
    )
    a = base.c
    is_customer = a.purchases > 0
    anchor = clock_anchor_sql(
        is_customer=is_customer,
        activity_day=a.activity_day,
        created_day=a.created_day,
        interaction_day=a.interaction_day,
    )
    clock_days = literal(run.now_day) - anchor
    stage = stage_sql(
        is_customer=is_customer,
        clock_days=clock_days,
        email_status=a.email_status,
        sms_status=a.sms_status,
        lost_by_journey_at=a.lost_by_journey_at,
        last_interaction_at=a.last_interaction_at,
        policy=policy,
        p_alive=a.stage_p_alive,
    )
    staged = select(
        base,
        clock_days.label("clock_days"),
        (literal(run.now_day) - a.interaction_day).label("days_inactive"),
        stage.label("stage"),
        case((is_customer, quintile_sql(a.purchase_day, points.recency))).label("recency_score"),
        case((is_customer, quintile_sql(a.purchases, points.frequency))).label("frequency_score"),
        case((is_customer, quintile_sql(a.total_spend, points.monetary))).label("monetary_score"),
    ).subquery("b")
    b = staged.c
    thresholds = sorted(days for days, _ in policy.clock_thresholds())
    next_threshold = case(
        *(
            (b.clock_days < days, day_date(literal(run.now_day + days) - b.clock_days))
            for days in thresholds
        )
    )
    return select(
        b.contact_id,
        literal(to_db(run.now)).label("scored_at"),
        *(b[name] for name in FACT_COLUMNS),
        b.last_event_id,
        b.days_inactive,
        case((b.purchases > 0, b.total_spend / b.purchases)).label("avg_spend"),
        b.recency_score,
        b.frequency_score,
        b.monetary_score,
        spend_level_sql(b.monetary_score).label("spend_level"),
        b.clock_days,
        b.stage,
        case((b.old_stage == b.stage, b.old_stage_since), else_=literal(today)).label(
            "stage_since"
        ),
        protected_sql(
            b.stage, b.subscription_active, protect_subscribers=policy.protect_subscribers
        ).label("dormant_subscriber"),
        b.p_alive,
        b.expected_purchases_90d,
        b.expected_value_12m,
        next_threshold.label("next_threshold_on"),
        b.old_stage,
    )


def write_rows(connection: Connection, run: ScoreRun, *, full: bool) -> tuple[int, int]:
    """Replace the stored rows of the contacts in ``score_new`` (every row on a ``full``
    score, else those of ``score_touch`` that changed: an erased contact's row goes
    without a new one), and record the stage changes. Returns (stage changes, rows
    written)."""
    n = score_new.c
    today = from_day_number(run.now_day)
    changed = or_(n.old_stage.is_(None), n.old_stage != n.stage)
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
    columns = [column.name for column in contact_scores.columns]
    rows = select(*(n[name] for name in columns))
    if full:
        connection.execute(delete(contact_scores))
        connection.execute(insert(contact_scores).from_select(columns, rows))
    else:
        # An upsert rewrites each touched row where it lies; a delete then an insert
        # would visit every page twice.
        connection.execute(
            delete(contact_scores).where(
                contact_scores.c.contact_id.in_(select(score_touch.c.contact_id)),
                contact_scores.c.contact_id.not_in(select(n.contact_id)),
            )
        )
        # A row that would come out the same but for its clocks (as of ``scored_at``)
        # stays as it is: new events that were sends, machine opens or older than what
        # the row already knows change nothing, and every row not written is a page
        # the commit does not write.
        same = [n[name].is_not_distinct_from(contact_scores.c[name]) for name in KEPT_COLUMNS]
        connection.execute(
            delete(score_new).where(
                exists(select(literal(1)).where(contact_scores.c.contact_id == n.contact_id, *same))
            )
        )
        upsert = _dialect_insert(connection)(contact_scores).from_select(
            columns, rows.where(true())
        )
        connection.execute(
            upsert.on_conflict_do_update(
                index_elements=[contact_scores.c.contact_id],
                set_={name: upsert.excluded[name] for name in columns if name != "contact_id"},
            )
        )
    changes, rewritten = connection.execute(
        select(func.coalesce(func.sum(case((changed, 1), else_=0)), 0), func.count()).select_from(
            score_new
        )
    ).one()
    return int(changes), int(rewritten)


def _dialect_insert(connection: Connection) -> Any:
    """The ``insert`` of the connection's dialect, which knows ``ON CONFLICT``."""
    return sqlite_insert if connection.dialect.name == "sqlite" else postgresql_insert
