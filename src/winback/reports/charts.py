"""The charts of the dashboard and of the HTML report, as Plotly figures (JSON-ready
dicts that plotly.js draws). Built from the plain numbers of :mod:`winback.reports`;
labels come in the caller's words (``t``), so the same chart serves French and English.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import plotly.graph_objects as go

from winback.domain import Stage

_STAGE_COLOURS = {
    "prospect": "#94a3b8",
    "active": "#16a34a",
    "at_risk": "#f59e0b",
    "dormant": "#ea580c",
    "lost": "#b91c1c",
    "unsubscribed": "#6b7280",
    "bounced": "#374151",
    "complained": "#111827",
}
_LAYOUT = {"margin": {"l": 50, "r": 20, "t": 40, "b": 40}, "height": 320, "template": "none"}


def _figure(fig: go.Figure, title: str) -> dict[str, Any]:
    fig.update_layout(title=title, **_LAYOUT)
    plain: dict[str, Any] = fig.to_plotly_json()
    return plain


def stages_over_time(trend: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    fig = go.Figure()
    for stage in Stage:
        fig.add_bar(
            x=trend["days"],
            y=trend["stages"][stage.value],
            name=t.get(stage.value, stage.value),
            marker_color=_STAGE_COLOURS[stage.value],
        )
    fig.update_layout(barmode="stack")
    return _figure(fig, t["stages_over_time"])


def inactivity(health: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    buckets = health["inactivity_buckets"]
    fig = go.Figure(
        go.Bar(
            x=list(buckets),
            y=[bucket["count"] for bucket in buckets.values()],
            marker_color="#2b6cb0",
        )
    )
    fig.update_xaxes(title=t["months_silent"])
    return _figure(fig, t["inactivity"])


def channels(health: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    fig = go.Figure()
    per_channel = {
        channel: values["statuses"]
        for channel, values in health["channels"].items()
        if isinstance(values, Mapping) and "statuses" in values
    }
    for status in ("subscribed", "unsubscribed", "bounced", "complained", "none"):
        fig.add_bar(
            x=list(per_channel),
            y=[statuses[status]["count"] for statuses in per_channel.values()],
            name=t.get(status, status),
        )
    fig.update_layout(barmode="stack")
    return _figure(fig, t["channel_statuses"])


def funnel(result: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    steps = [step["id"] for step in result["steps"]]
    fig = go.Figure()
    for key in ("sent", "delivered", "opened", "clicked", "conversions"):
        fig.add_bar(x=steps, y=[step[key] for step in result["steps"]], name=t[key])
    fig.update_layout(barmode="group")
    return _figure(fig, f"{result['name']}: {t['funnel']}")


def lift(result: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    """Treated and holdout reactivation rates, and the difference with its interval."""
    measured = result["lift"]
    fig = go.Figure()
    if measured["difference"] is not None:
        fig.add_bar(
            x=[t["treated"], t["holdout"]],
            y=[measured["treated"] * 100, measured["holdout"] * 100],
            marker_color=["#2b6cb0", "#94a3b8"],
            name=t["reactivation_rate"],
        )
        fig.add_scatter(
            x=[t["difference"]],
            y=[measured["difference"] * 100],
            mode="markers",
            marker={"size": 12, "color": "#16a34a" if measured["significant"] else "#6b7280"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(measured["ci_high"] - measured["difference"]) * 100],
                "arrayminus": [(measured["difference"] - measured["ci_low"]) * 100],
            },
            name=t["difference"],
        )
        fig.update_yaxes(title="%")
    return _figure(fig, f"{result['name']}: {t['lift']}")


def erosion(eroded: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    """The share of the base lost month by month against the usual pace."""
    fig = go.Figure()
    fig.add_scatter(
        x=eroded["days"],
        y=[None if share is None else share * 100 for share in eroded["share"]],
        name=t["eroded"],
        mode="lines+markers",
        line_color="#b91c1c",
    )
    fig.add_scatter(
        x=eroded["days"],
        y=[usual * 100 for usual in eroded["usual"]],
        name=t["erosion_usual"],
        mode="lines",
        line={"dash": "dash", "color": "#6b7280"},
    )
    fig.update_yaxes(title="%", rangemode="tozero")
    return _figure(fig, t["erosion"])


def deliverability(weekly: Mapping[str, Any], t: Mapping[str, str]) -> dict[str, Any]:
    def percent(values: list[float | None]) -> list[float | None]:
        return [None if value is None else value * 100 for value in values]

    fig = go.Figure()
    fig.add_scatter(x=weekly["weeks"], y=percent(weekly["bounce_rate"]), name=t["bounce_rate"])
    fig.add_scatter(
        x=weekly["weeks"], y=percent(weekly["complaint_rate"]), name=t["complaint_rate"]
    )
    fig.add_hline(
        y=weekly["complaint_limit"] * 100,
        line_dash="dash",
        line_color="#b91c1c",
        annotation_text=t["complaint_limit"],
    )
    fig.update_yaxes(title="%", rangemode="tozero")
    return _figure(fig, t["deliverability"])


def counts(values: Mapping[str, int], title: str, t: Mapping[str, str]) -> dict[str, Any]:
    """A plain bar chart of counts by label (suppressions by reason, survey answers)."""
    fig = go.Figure(
        go.Bar(
            x=[t.get(label, label) for label in values],
            y=list(values.values()),
            marker_color="#2b6cb0",
        )
    )
    return _figure(fig, title)
