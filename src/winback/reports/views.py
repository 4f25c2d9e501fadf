"""What each page of the dashboard shows, as plain data and charts: the dashboard
(:mod:`winback.web.dashboard`) and the standalone report (``winback report``) render the
same views, so they always agree."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from winback.clock import local_date
from winback.reports import charts, trends
from winback.reports.aggregates import health_snapshot
from winback.reports.results import journey_results
from winback.store.schema import journeys
from winback.workspace import Workspace


def base_view(
    workspace: Workspace, now: datetime, t: Mapping[str, str], since: date | None = None
) -> dict[str, Any]:
    """The base page: health as of the last score, stages over time, erosion month by
    month, flows between stages since ``since`` (90 days by default). On a base never
    scored, ``health`` is None and there is nothing to draw."""
    today = local_date(now, workspace.config.workspace.tz)
    start = since or today - timedelta(days=90)
    with workspace.engine.connect() as connection:
        health = health_snapshot(connection)
        if health is None:
            return {"health": None, "flows": [], "flows_since": start.isoformat(), "charts": []}
        trend = trends.stages_over_time(connection, today)
        eroded = trends.erosion(connection, today)
        flows = trends.stage_flows(connection, start, today)
    return {
        "health": health,
        "erosion": eroded,
        "flows": flows,
        "flows_since": start.isoformat(),
        "charts": [
            charts.stages_over_time(trend, t),
            charts.erosion(eroded, t),
            charts.inactivity(health, t),
            charts.channels(health, t),
        ],
    }


def journeys_view(workspace: Workspace, now: datetime, t: Mapping[str, str]) -> dict[str, Any]:
    """The journeys page: each journey's results, funnel and lift."""
    with workspace.engine.connect() as connection:
        names = connection.execute(select(journeys.c.name).order_by(journeys.c.name)).scalars()
        found = list(names)
    language = workspace.config.workspace.language
    results = [journey_results(workspace, name, now, language) for name in found]
    drawn = [[charts.funnel(result, t), charts.lift(result, t)] for result in results]
    return {
        "journeys": [
            {"result": result, "charts": pair} for result, pair in zip(results, drawn, strict=True)
        ],
        "charts": [chart for pair in drawn for chart in pair],
    }


def deliverability_view(
    workspace: Workspace, now: datetime, t: Mapping[str, str]
) -> dict[str, Any]:
    """The deliverability page: weekly bounce and complaint rates, suppressions."""
    with workspace.engine.connect() as connection:
        weekly = trends.deliverability(connection, now, workspace.config.workspace.timezone)
        reasons = trends.suppressions_by_reason(connection)
    return {
        "weekly": weekly,
        "suppressions": reasons,
        "charts": [
            charts.deliverability(weekly, t),
            charts.counts(reasons, t["suppressions"], t),
        ],
    }


def survey_view(workspace: Workspace, t: Mapping[str, str]) -> dict[str, Any]:
    """The survey page: answers per reason and the latest free texts."""
    from winback.web.choices import survey_report

    report = survey_report(workspace, latest=50)
    return {"report": report, "charts": [charts.counts(report["reasons"], t["answers"], t)]}
