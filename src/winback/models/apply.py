"""The models applied to a workspace: fit on its purchase history, store the fit, and give
every customer of the base their estimates when ``winback score`` runs.

The rest of :mod:`winback.models` takes arrays and does no I/O; this module is the engine
around it. The per-customer summary is built in NumPy from the purchase events
(:func:`summary_from_transactions`, a few hundred milliseconds for millions of
purchases) and the estimates are computed in NumPy and written back in bulk into a
temporary table that the scoring SQL joins. P(alive) alone could be written in SQL
(ln and exp), but the expected purchases need a hypergeometric function that neither
SQLite nor PostgreSQL has, and the summary is in memory anyway: one path for every
engine.

A fit that fails (too few customers, no repeat buyers, a degenerate optimum) is stored
too, with its reason: ``winback score`` then leaves the estimates empty, stages customers
by the day thresholds, and says why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Column, Connection, Engine, Float, Integer, MetaData, Table, insert, select

from winback.clock import from_db, to_db
from winback.config import ModelsSection
from winback.domain import EventType
from winback.models._base import PurchaseModel
from winback.models.bgnbd import BetaGeo
from winback.models.clv import clv
from winback.models.errors import ModelFitError
from winback.models.gammagamma import GammaGamma
from winback.models.pareto import ParetoNBD
from winback.models.summary import DAYS_PER_UNIT, Summary, summary_from_transactions
from winback.store.history import events_slice
from winback.store.schema import contacts, model_fits

PURCHASE_MODELS: dict[str, type[BetaGeo] | type[ParetoNBD]] = {
    BetaGeo.kind: BetaGeo,
    ParetoNBD.kind: ParetoNBD,
}
EXPECTED_DAYS = 90

_temp = MetaData()
model_estimates = Table(
    "model_estimates",
    _temp,
    Column("contact_id", Integer, primary_key=True),
    Column("p_alive", Float),
    # The P(alive) the stage may use: NULL where the model says nothing about the
    # customer (BG/NBD gives every one-time buyer P(alive) = 1, however long ago).
    Column("stage_p_alive", Float),
    Column("expected_purchases_90d", Float),
    Column("expected_value_12m", Float),
    prefixes=["TEMPORARY"],
)


@dataclass
class ModelFit:
    """One stored fit: the purchase model's and the spend model's parameters, when and
    on what they were fitted, and how well; ``error`` says why a failed fit failed."""

    kind: str
    time_unit: str
    fitted_at: datetime
    customers: int
    params: dict[str, float] = field(default_factory=dict)
    spend_params: dict[str, float] | None = None
    log_likelihood: float | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    id: int | None = None

    @property
    def label(self) -> str:
        return PURCHASE_MODELS[self.kind].label

    def purchase_model(self) -> PurchaseModel:
        return PURCHASE_MODELS[self.kind](self.params)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fitted_at": self.fitted_at.isoformat()}


def purchases(connection: Connection, now: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contact id, time, amount) of every purchase up to ``now`` by a contact not
    erased, as arrays (times naive UTC ``datetime64[us]``, missing amounts 0)."""
    erased = select(contacts.c.id).where(contacts.c.erased_at.is_not(None))
    events = events_slice(connection, types=[EventType.PURCHASE], until=now)
    rows = connection.execute(
        select(events.c.contact_id, events.c.occurred_at, events.c.amount).where(
            # NOT IN the few erased rather than a join with the contacts: SQLite would
            # walk every contact's events through the (contact, time) index with a table
            # look-up each, far slower than one scan (see bench/RESULTS.md).
            events.c.contact_id.not_in(erased),
        )
    ).all()
    size = len(rows)
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=size)
    when = np.array([row[1] for row in rows], dtype="datetime64[us]").reshape(size)
    amount = np.fromiter(
        (0.0 if row[2] is None else row[2] for row in rows), dtype=np.float64, count=size
    )
    return ids, when, amount


def purchase_summary(connection: Connection, now: datetime, time_unit: str) -> Summary:
    """(frequency, recency, T, monetary_value) of every customer not erased, from the
    purchase events up to ``now``, in ``time_unit``; ``customer`` holds contact ids."""
    return summary_from_transactions(
        *purchases(connection, now),
        observation_end=np.datetime64(to_db(now), "us"),
        time_unit=time_unit,  # type: ignore[arg-type]
    )


def fit_models(engine: Engine, settings: ModelsSection, now: datetime) -> ModelFit:
    """Fit the purchase model of ``settings.kind`` and the Gamma-Gamma spend model on the
    purchase history up to ``now``, store the fit, and return it. A failed purchase fit
    is stored with its reason, then raised as ``ModelFitError``; a failed spend fit only
    leaves the expected value empty (its reason is in ``quality``)."""
    with engine.connect() as connection:
        summary = purchase_summary(connection, now, settings.time_unit)
    fit = fit_summary(summary, settings.kind, settings.time_unit, now)
    with engine.begin() as connection:
        fit.id = store_fit(connection, fit)
    if fit.error:
        raise ModelFitError(
            f"{fit.label} fit failed: {fit.error}. `winback score` stages customers by the "
            "day thresholds of the policy until a fit succeeds."
        )
    return fit


def fit_summary(summary: Summary, kind: str, time_unit: str, now: datetime) -> ModelFit:
    """Fit both models on a summary; a purchase-model failure is returned in ``error``."""
    repeat = int((summary.frequency > 0).sum())
    fit = ModelFit(
        kind=kind,
        time_unit=time_unit,
        fitted_at=now,
        customers=int(summary.frequency.size),
        quality={"repeat_buyers": repeat},
    )
    try:
        model = PURCHASE_MODELS[kind]().fit(summary.frequency, summary.recency, summary.T)
    except ModelFitError as exc:
        fit.error = str(exc)
        return fit
    fit.params = dict(model.params)
    fit.log_likelihood = model.log_likelihood
    assert model.log_likelihood is not None
    fit.quality["log_likelihood_per_customer"] = model.log_likelihood / max(fit.customers, 1)
    try:
        spend = GammaGamma().fit(summary.frequency, summary.monetary_value)
    except ModelFitError as exc:
        fit.quality["spend_error"] = str(exc)
    else:
        fit.spend_params = dict(spend.params)
        fit.quality["spend_customers"] = int(spend.customers)
        fit.quality["spend_left_out"] = int(spend.left_out)
    return fit


def store_fit(connection: Connection, fit: ModelFit) -> int:
    """Append a fit to ``model_fits``; returns its id."""
    result = connection.execute(
        insert(model_fits).returning(model_fits.c.id),
        {
            "kind": fit.kind,
            "time_unit": fit.time_unit,
            "params": {"purchase": fit.params, "spend": fit.spend_params},
            "log_likelihood": fit.log_likelihood,
            "customers": fit.customers,
            "fitted_at": to_db(fit.fitted_at),
            "calibration_end": to_db(fit.fitted_at),
            "quality": {**fit.quality, "error": fit.error},
        },
    )
    return int(result.scalar_one())


def latest_fit(connection: Connection) -> ModelFit | None:
    """The most recent stored fit (failed or not), or None before the first."""
    row = (
        connection.execute(select(model_fits).order_by(model_fits.c.id.desc()).limit(1))
        .mappings()
        .one_or_none()
    )
    if row is None:
        return None
    quality = dict(row["quality"] or {})
    error = quality.pop("error", None)
    return ModelFit(
        id=int(row["id"]),
        kind=row["kind"],
        time_unit=row["time_unit"],
        fitted_at=from_db(row["fitted_at"]),
        customers=int(row["customers"]),
        params=dict(row["params"].get("purchase") or {}),
        spend_params=row["params"].get("spend"),
        log_likelihood=row["log_likelihood"],
        quality=quality,
        error=error,
    )


@dataclass(frozen=True)
class Estimates:
    """Each customer's estimates from a fit, in the order of ``summary.customer``."""

    summary: Summary
    p_alive: np.ndarray
    expected_purchases_90d: np.ndarray
    expected_value_12m: np.ndarray | None


def estimate(fit: ModelFit, summary: Summary, settings: ModelsSection) -> Estimates:
    """P(alive), expected purchases over 90 days and, with a spend model, the value over
    ``settings.horizon_months`` discounted at ``settings.monthly_discount_rate``."""
    model = fit.purchase_model()
    rfm = (summary.frequency, summary.recency, summary.T)
    days = DAYS_PER_UNIT[fit.time_unit]
    value = None
    if fit.spend_params is not None:
        value = clv(
            model,
            GammaGamma(fit.spend_params),
            *rfm,
            summary.monetary_value,
            time_unit=fit.time_unit,  # type: ignore[arg-type]
            horizon_months=settings.horizon_months,
            monthly_discount_rate=settings.monthly_discount_rate,
        )
    return Estimates(
        summary=summary,
        p_alive=model.p_alive(*rfm),
        expected_purchases_90d=model.expected_purchases(EXPECTED_DAYS / days, *rfm),
        expected_value_12m=value,
    )


def fill_estimates(connection: Connection, settings: ModelsSection, now: datetime) -> str:
    """Fill the temporary ``model_estimates`` table (created by the caller) from the
    latest stored fit, for the customers as of ``now``. Returns one line saying what was
    done, or why nothing was (no fit yet, or the last fit failed), for the score's
    summary."""
    fit = latest_fit(connection)
    if fit is None:
        return "no model fit yet (`winback models fit`): customers are staged by days"
    if fit.error:
        return (
            f"the last {fit.label} fit ({fit.fitted_at:%Y-%m-%d}) failed: {fit.error}; "
            "customers are staged by days"
        )
    result = estimate(fit, purchase_summary(connection, now, fit.time_unit), settings)
    summary = result.summary
    stage_p_alive = result.p_alive.copy()
    if fit.kind == BetaGeo.kind:
        stage_p_alive[summary.frequency == 0] = np.nan
    value = (
        result.expected_value_12m
        if result.expected_value_12m is not None
        else np.full(summary.customer.size, np.nan)
    )
    columns = zip(
        summary.customer.tolist(),
        result.p_alive.tolist(),
        stage_p_alive.tolist(),
        result.expected_purchases_90d.tolist(),
        value.tolist(),
        strict=True,
    )
    names = [column.name for column in model_estimates.columns]
    # NaN (no estimate) is stored as NULL: v != v holds for NaN only.
    rows = [
        {name: (None if v != v else v) for name, v in zip(names, row, strict=True)}
        for row in columns
    ]
    if rows:
        connection.execute(insert(model_estimates), rows)
    spend = "" if fit.spend_params is not None else " (no spend model: no expected value)"
    return (
        f"{fit.label} fit of {fit.fitted_at:%Y-%m-%d}: estimates for "
        f"{summary.customer.size} customers{spend}"
    )
