"""The models in a workspace: `winback models fit`, the estimates `winback score` writes,
the p_alive clock, the fallback to days, and `winback models report`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from typer.testing import CliRunner

from tests.builders import add_contact, add_event, day
from winback.cli import app
from winback.store.schema import contacts
from winback.workspace import Workspace

NOW = day(2025, 6, 1, 0)
MONTH = timedelta(days=30)


def _customer(ws: Workspace, name: str, purchases: list[datetime]) -> None:
    """A customer with these purchase times; spend differs between customers (15 to 135
    on average) and from one purchase to the next."""
    with ws.engine.begin() as c:
        contact = add_contact(c, email=f"{name}@example.com", created_at=purchases[0])
        mean = 15.0 + 20 * (contact % 7)
        for i, moment in enumerate(purchases):
            add_event(c, contact, "purchase", moment, amount=mean * (0.6 + 0.4 * (i % 3)))


def _every(start: datetime, step: timedelta, count: int) -> list[datetime]:
    return [start + i * step for i in range(count)]


def _base(ws: Workspace) -> dict[str, list[datetime]]:
    """Two years of a shop: steady monthly buyers, monthly buyers who stopped after a
    few months, customers who bought twice, yearly buyers, one-time buyers; and the two
    customers the tests are about, both silent for the last four months: one bought every
    month for two years, one once a year. Returns each customer's purchase times."""
    start = NOW - timedelta(days=760)
    base = {}
    for i in range(10):
        base[f"steady{i}"] = _every(start + timedelta(days=3 * i), MONTH, 25)
    for i in range(20):
        base[f"stopped{i}"] = _every(start + timedelta(days=5 * i), MONTH, 3 + i)
    for i in range(5):
        base[f"twice{i}"] = _every(start + timedelta(days=11 * i), MONTH, 2)
    for i in range(8):
        base[f"yearly{i}"] = _every(start + timedelta(days=9 * i), timedelta(days=365), 3)
    for i in range(10):
        base[f"once{i}"] = [start + timedelta(days=40 * i)]
    silent = NOW - 4 * MONTH
    base["monthly"] = _every(silent - 23 * MONTH, MONTH, 24)
    base["yearly"] = [silent - timedelta(days=730), silent - timedelta(days=365), silent]
    for name, times in base.items():
        _customer(ws, name, times)
    return base


def _use_p_alive_clock(ws: Workspace) -> None:
    path = ws.path / "winback.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace('clock = "days"', 'clock = "p_alive"'), encoding="utf-8")


def _run(cli: CliRunner, ws: Workspace, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, [*args, "-w", str(ws.path)])
    assert result.exit_code == code, result.output
    return result.output


def _scores(cli: CliRunner, ws: Workspace, name: str) -> dict[str, Any]:
    shown = json.loads(_run(cli, ws, "contact", "show", f"{name}@example.com", "--json"))
    return {"stage": shown["stage"], **shown["scores"]}


def test_p_alive_clock_tells_a_lapsed_monthly_buyer_from_a_yearly_one(
    workspace: Workspace, cli: CliRunner
) -> None:
    ws = workspace
    _base(ws)
    _use_p_alive_clock(ws)
    fitted = json.loads(_run(cli, ws, "models", "fit", "--now", "2025-06-01", "--json"))
    assert fitted["kind"] == "bgnbd" and fitted["error"] is None
    assert set(fitted["params"]) == {"r", "alpha", "a", "b"}
    assert fitted["customers"] == 55
    assert set(fitted["spend_params"] or {}) == {"p", "q", "gamma"}, fitted["quality"]

    scored = json.loads(_run(cli, ws, "score", "--now", "2025-06-01", "--json"))
    assert "bgnbd fit" in scored["models"].lower() or "BG/NBD" in scored["models"]
    monthly, yearly = _scores(cli, ws, "monthly"), _scores(cli, ws, "yearly")
    # The same four months of silence: long for a monthly buyer, nothing for a yearly one.
    assert monthly["p_alive"] < 0.5
    assert monthly["stage"] in {"at_risk", "dormant"}
    assert yearly["p_alive"] > 0.5
    assert yearly["stage"] == "active"
    steady = _scores(cli, ws, "steady0")
    assert steady["stage"] == "active"
    assert steady["expected_purchases_90d"] > 2 > monthly["expected_purchases_90d"]
    # Value: purchases times spend (which differs between the two), so compare per unit
    # of each one's own average spend.
    assert monthly["expected_value_12m"] > 0
    worth = {
        k: c["expected_value_12m"] / c["avg_spend"]
        for k, c in (("steady", steady), ("monthly", monthly))
    }
    assert worth["steady"] > worth["monthly"]
    shown = _run(cli, ws, "contact", "show", "monthly@example.com")
    assert f"{monthly['p_alive']:.3g}" in shown and "expected_value_12m" in shown
    # A one-time buyer: BG/NBD says P(alive) = 1 whatever the silence, so the day clock
    # stages them (this one bought 760 days ago: lost under the ecommerce policy).
    once = _scores(cli, ws, "once0")
    assert once["p_alive"] == 1.0
    assert once["stage"] == "lost"


def test_the_day_clock_sees_both_silent_customers_alike(
    workspace: Workspace, cli: CliRunner
) -> None:
    ws = workspace
    _base(ws)
    _run(cli, ws, "models", "fit", "--now", "2025-06-01")
    _run(cli, ws, "score", "--now", "2025-06-01")
    monthly, yearly = _scores(cli, ws, "monthly"), _scores(cli, ws, "yearly")
    # ecommerce: at risk after 120 days; both were silent for 120 days.
    assert monthly["stage"] == yearly["stage"] == "at_risk"
    assert monthly["p_alive"] < 0.5 < yearly["p_alive"]


def test_a_failed_fit_says_why_and_score_falls_back_to_days(
    workspace: Workspace, cli: CliRunner
) -> None:
    ws = workspace
    _use_p_alive_clock(ws)
    for i in range(12):
        _customer(ws, f"once{i}", [NOW - timedelta(days=10 + 30 * i)])
    failed = cli.invoke(app, ["models", "fit", "-w", str(ws.path), "--now", "2025-06-01"])
    assert failed.exit_code == 6
    assert "no customer has a repeat purchase" in failed.output
    assert "day thresholds" in failed.output
    scored = _run(cli, ws, "score", "--now", "2025-06-01")
    assert "failed" in scored and "staged by days" in scored
    old = _scores(cli, ws, "once11")  # bought 340 days ago
    assert old["stage"] == "dormant" and old["p_alive"] is None


def test_an_erased_customer_is_left_out_of_the_fit(workspace: Workspace, cli: CliRunner) -> None:
    ws = workspace
    base = _base(ws)
    with ws.engine.begin() as c:
        c.execute(
            update(contacts)
            .where(contacts.c.email == "steady0@example.com")
            .values(erased_at=NOW.replace(tzinfo=None), email=None)
        )
    fit = json.loads(_run(cli, ws, "models", "fit", "--now", "2025-06-01", "--json"))
    assert fit["customers"] == len(base) - 1


def test_score_without_a_fit_says_so(workspace: Workspace, cli: CliRunner) -> None:
    ws = workspace
    _customer(ws, "solo", [NOW - timedelta(days=10)])
    scored = _run(cli, ws, "score", "--now", "2025-06-01")
    assert "no model fit yet" in scored


def test_report_compares_expected_and_actual_purchases_in_the_holdout(
    workspace: Workspace, cli: CliRunner
) -> None:
    ws = workspace
    base = _base(ws)
    _run(cli, ws, "models", "fit", "--now", "2025-06-01")
    result = json.loads(
        _run(
            cli,
            ws,
            "models",
            "report",
            "--holdout-from",
            "2024-12-01",
            "--now",
            "2025-06-01",
            "--json",
        )
    )
    assert result["fit"]["kind"] == "bgnbd"
    calibration = result["calibration"]
    assert calibration["holdout_from"] == "2024-12-01"
    classes = {row["frequency"]: row for row in calibration["classes"]}
    assert list(classes) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    # Who was a customer before the holdout, and what they bought in it.
    split = day(2024, 12, 1, 0)
    before = [times for times in base.values() if times[0] < split]
    assert calibration["total"]["customers"] == len(before)
    assert calibration["total"]["actual"] == sum(split <= t <= NOW for ts in before for t in ts)
    assert sum(row["customers"] for row in classes.values()) == len(before)
    heavy = classes["7+"]
    assert heavy["expected"] > classes["0"]["expected"]
    text = _run(cli, ws, "models", "report", "--holdout-from", "2024-12-01", "--now", "2025-06-01")
    assert "expected" in text and "7+" in text
