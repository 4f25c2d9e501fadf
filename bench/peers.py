"""The peers of ``bench/score.py``: the per-contact facts, stages and RFM scores that
winback's full score computes, written as a data analyst would with plain pandas, then
with Polars, both reading the events and contacts from the store (the SQLite file of the
workspace, or the PostgreSQL database of ``ENV_DATABASE_URL``).

Both are favoured over winback: they write nothing back, know the bench's profile
(ecommerce, UTC) instead of reading the policy, and skip the lost-by-journey and
subscriber rules, none of which the synthetic base exercises. Both follow the same rules
(machine opens, human interactions, the stage thresholds, the consent stages, RFM
quintiles by the "lower" quantile), so on one base they count the same stages:
``bench/score.py`` checks it.

Each phase returns its seconds and its stage counts; the caller adds its peak memory.
"""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from winback.workspace import ENV_DATABASE_URL

#: The events the facts need (interactions, and deliveries for the machine-open rule),
#: each column with a typed value for the typing row of an ADBC read (see _read_polars).
EVENTS_READ = {
    "id": "-1",
    "contact_id": "0",
    "type": "''",
    "channel": "''",
    "occurred_at": "''",
    "amount": "0.0",
    "message_id": "''",
    "machine_open": "0",
    "bot": "0",
    "user_agent": "''",
}
EVENTS_WHERE = "type IN ('open','click','purchase','visit','login','reply','delivered')"
CONTACTS_READ = {
    "id": "-1",
    "created_at": "''",
    "email_status": "''",
    "sms_status": "''",
    "lost_by_journey_at": "''",
    "subscription_active": "0",
}
CONTACTS_WHERE = "erased_at IS NULL"
INTERACTIONS = ["purchase", "visit", "login", "reply"]
LAST_SEEN_CHANNELS = ("email", "sms", "web", "app", "store")
REFUSED = ["unsubscribed", "bounced", "complained"]
QUINTILES = [0.2, 0.4, 0.6, 0.8]
# Apple Mail Privacy Protection and the webmail image proxies fetch a message without
# anyone reading it; a real Safari says "Safari/".
APPLE_PROXY = r"^Mozilla/5\.0 \((iPhone|iPad|Macintosh);.*AppleWebKit/.*\(KHTML, like Gecko\)"
WEBMAIL_PROXY = "GoogleImageProxy|YahooMailProxy"


def _query(columns: dict[str, str], table: str, where: str) -> str:
    return f"SELECT {', '.join(columns)} FROM {table} WHERE {where}"


def phase_pandas(work: Path, now: str) -> dict[str, Any]:
    """The facts, stages and RFM with pandas: ``read_sql_query``, boolean masks, a merge
    and ``groupby``, as an analyst would write them (no per-row Python)."""
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    url = os.environ.get(ENV_DATABASE_URL)
    db: Any = create_engine(url).connect() if url else sqlite3.connect(work / "winback.db")
    ev = pd.read_sql_query(
        _query(EVENTS_READ, "events", EVENTS_WHERE), db, parse_dates=["occurred_at"]
    )
    contacts = pd.read_sql_query(
        _query(CONTACTS_READ, "contacts", CONTACTS_WHERE),
        db,
        parse_dates=["created_at", "lost_by_journey_at"],
    )
    delivered = ev[ev.type == "delivered"][["contact_id", "message_id", "occurred_at"]]
    ev = ev[ev.type != "delivered"]
    opens = ev[(ev.type == "open") & ev.machine_open.isna() & ev.message_id.notna()]
    joined = opens[["id", "contact_id", "message_id", "occurred_at"]].merge(
        delivered, on=["contact_id", "message_id"], suffixes=("", "_d")
    )
    delay = (joined.occurred_at - joined.occurred_at_d).dt.total_seconds()
    prefetched = set(joined.id[(delay >= 0) & (delay <= 2)])
    ua = ev.user_agent.fillna("")
    proxy = (ua == "Mozilla/5.0") | (
        ua.str.match(APPLE_PROXY) | ua.str.contains(WEBMAIL_PROXY, case=False)
    ) & ~ua.str.contains("Safari/")
    machine = (ev.machine_open == 1) | (ev.machine_open.isna() & (proxy | ev.id.isin(prefetched)))
    human = (
        ((ev.type == "open") & ~machine)
        | ((ev.type == "click") & (ev.bot != 1))
        | ev.type.isin(INTERACTIONS)
    )
    inter = ev[human]
    facts = inter.groupby("contact_id").occurred_at.max().rename("last_interaction_at").to_frame()
    for channel in LAST_SEEN_CHANNELS:
        facts[f"last_{channel}_at"] = (
            inter[inter.channel == channel].groupby("contact_id").occurred_at.max()
        )
    buys = (
        ev[ev.type == "purchase"]
        .groupby("contact_id")
        .agg(
            first_purchase_at=("occurred_at", "min"),
            last_purchase_at=("occurred_at", "max"),
            purchases=("id", "size"),
            total_spend=("amount", "sum"),
        )
    )
    base = contacts.set_index("id").join(facts).join(buys)
    base["purchases"] = base.purchases.fillna(0)
    today = pd.Timestamp(now)
    base["days_inactive"] = (today - base.last_interaction_at.dt.normalize()).dt.days
    customer = base.purchases > 0
    anchor = base[["created_at", "last_interaction_at"]].max(axis=1).dt.normalize()
    anchor = anchor.where(~customer, base.last_purchase_at.dt.normalize())
    clock = (today - anchor).dt.days
    stage = np.select(
        [clock >= 365, clock >= 180, clock >= 120, customer],
        ["lost", "dormant", "at_risk", "active"],
        "prospect",
    )
    known_e, known_s = base.email_status != "none", base.sms_status != "none"
    all_refused = (
        (known_e | known_s)
        & (~known_e | base.email_status.isin(REFUSED))
        & (~known_s | base.sms_status.isin(REFUSED))
    )
    statuses = base[["email_status", "sms_status"]]
    consent = np.select(
        [(statuses == "complained").any(axis=1), (statuses == "unsubscribed").any(axis=1)],
        ["complained", "unsubscribed"],
        "bounced",
    )
    stage = np.where(all_refused, consent, stage)
    base["stage"] = stage
    cust = base[customer]
    for name, column in (
        ("recency_score", cust.last_purchase_at.dt.normalize()),
        ("frequency_score", cust.purchases),
        ("monetary_score", cust.total_spend),
    ):
        points = column.quantile(QUINTILES, interpolation="lower").to_numpy()
        base.loc[customer, name] = 1 + (column.to_numpy()[:, None] > points).sum(axis=1)
    counts = base.stage.value_counts().to_dict()
    return {
        "seconds": time.perf_counter() - started,
        "stages": {k: int(v) for k, v in counts.items()},
    }


def _read_polars(work: Path, columns: dict[str, str], table: str, where: str) -> Any:
    """One query's rows as a Polars frame: from SQLite through ADBC (Arrow, no Python
    rows), from PostgreSQL through SQLAlchemy. The ADBC driver types a column by its
    first rows and fails on a later value of another type (a column NULL in all of
    them reads as integers), so the SQLite query starts with a typing row, id -1,
    dropped after the read."""
    import polars as pl

    url = os.environ.get(ENV_DATABASE_URL)
    if url:
        from sqlalchemy import create_engine

        with create_engine(url).connect() as db:
            return pl.read_database(_query(columns, table, where), db)
    typing = ", ".join(f"{value} AS {name}" for name, value in columns.items())
    query = f"SELECT {typing} UNION ALL {_query(columns, table, where)}"
    frame = pl.read_database_uri(query, f"sqlite:///{work / 'winback.db'}", engine="adbc")
    return frame.filter(pl.col("id") >= 0)


def phase_polars(work: Path, now: str) -> dict[str, Any]:
    """The facts, stages and RFM of :func:`phase_pandas` with Polars: one lazy plan over
    the two frames read, collected whole (every column pandas computes, not only the
    stages, which the optimiser would otherwise prune down to)."""
    import polars as pl

    started = time.perf_counter()
    events = _read_polars(work, EVENTS_READ, "events", EVENTS_WHERE)
    contacts = _read_polars(work, CONTACTS_READ, "contacts", CONTACTS_WHERE)
    read_types = {**events.schema, **contacts.schema}

    def times(*names: str) -> list[pl.Expr]:
        # SQLite keeps times as SQLAlchemy's text; PostgreSQL hands datetimes.
        return [
            pl.col(name).cast(pl.String).str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us")
            if read_types[name] in (pl.String, pl.Null)
            else pl.col(name)
            for name in names
        ]

    ev = events.lazy().with_columns(times("occurred_at"))
    kind, at, ua = pl.col("type"), pl.col("occurred_at"), pl.col("user_agent").fill_null("")
    delivered = ev.filter(kind == "delivered").select(
        "contact_id", "message_id", at.alias("delivered_at")
    )
    ev = ev.filter(kind != "delivered")
    delay = at - pl.col("delivered_at")
    prefetched = (
        ev.filter((kind == "open") & pl.col("machine_open").is_null())
        .filter(pl.col("message_id").is_not_null())
        .select("id", "contact_id", "message_id", "occurred_at")
        .join(delivered, on=["contact_id", "message_id"])
        .filter((delay >= pl.duration(seconds=0)) & (delay <= pl.duration(seconds=2)))
        .select("id", prefetched=pl.lit(True))
        .unique()
    )
    proxy = (ua == "Mozilla/5.0") | (
        (ua.str.contains(APPLE_PROXY) | ua.str.contains(f"(?i){WEBMAIL_PROXY}"))
        & ~ua.str.contains("Safari/", literal=True)
    )
    flag = pl.col("machine_open")
    machine = flag.eq_missing(1) | (
        flag.is_null() & (proxy | pl.col("prefetched").fill_null(False))
    )
    human = (
        ((kind == "open") & ~machine)
        | ((kind == "click") & pl.col("bot").ne_missing(1))
        | kind.is_in(INTERACTIONS)
    )
    inter = ev.join(prefetched, on="id", how="left").filter(human)
    facts = inter.group_by("contact_id").agg(
        at.max().alias("last_interaction_at"),
        *(
            at.filter(pl.col("channel") == channel).max().alias(f"last_{channel}_at")
            for channel in LAST_SEEN_CHANNELS
        ),
    )
    buys = (
        ev.filter(kind == "purchase")
        .group_by("contact_id")
        .agg(
            first_purchase_at=at.min(),
            last_purchase_at=at.max(),
            purchases=pl.len(),
            total_spend=pl.col("amount").sum(),
        )
    )
    today = pl.lit(date.fromisoformat(now))
    last_bought = pl.col("last_purchase_at").dt.date()
    customer = pl.col("purchases") > 0
    anchor = (
        pl.when(customer)
        .then(last_bought)
        .otherwise(pl.max_horizontal("created_at", "last_interaction_at").dt.date())
    )
    clock = (today - anchor).dt.total_days()
    stage = (
        pl.when(clock >= 365)
        .then(pl.lit("lost"))
        .when(clock >= 180)
        .then(pl.lit("dormant"))
        .when(clock >= 120)
        .then(pl.lit("at_risk"))
        .when(customer)
        .then(pl.lit("active"))
        .otherwise(pl.lit("prospect"))
    )
    email, sms = pl.col("email_status"), pl.col("sms_status")
    known_e, known_s = email.ne_missing("none"), sms.ne_missing("none")
    all_refused = (
        (known_e | known_s)
        & (~known_e | email.is_in(REFUSED).fill_null(False))
        & (~known_s | sms.is_in(REFUSED).fill_null(False))
    )
    consent = (
        pl.when(email.eq_missing("complained") | sms.eq_missing("complained"))
        .then(pl.lit("complained"))
        .when(email.eq_missing("unsubscribed") | sms.eq_missing("unsubscribed"))
        .then(pl.lit("unsubscribed"))
        .otherwise(pl.lit("bounced"))
    )

    def quintile(column: pl.Expr) -> pl.Expr:
        """1 to 5: how many of the customers' quintile points ``column`` is above."""
        points = [column.filter(customer).quantile(q, interpolation="lower") for q in QUINTILES]
        return pl.when(customer).then(1 + pl.sum_horizontal([column > p for p in points]))

    base = (
        contacts.lazy()
        .with_columns(times("created_at", "lost_by_journey_at"))
        .join(facts, left_on="id", right_on="contact_id", how="left")
        .join(buys, left_on="id", right_on="contact_id", how="left")
        .with_columns(pl.col("purchases").fill_null(0))
        .with_columns(
            days_inactive=(today - pl.col("last_interaction_at").dt.date()).dt.total_days(),
            stage=pl.when(all_refused).then(consent).otherwise(stage),
            recency_score=quintile(last_bought.to_physical()),
            frequency_score=quintile(pl.col("purchases")),
            monetary_score=quintile(pl.col("total_spend")),
        )
        .collect()
    )
    counts = base["stage"].value_counts()
    return {
        "seconds": time.perf_counter() - started,
        "stages": dict(zip(counts["stage"].to_list(), counts["count"].to_list(), strict=True)),
    }
