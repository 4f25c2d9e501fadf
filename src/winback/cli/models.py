"""``winback models fit`` and ``winback models report``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from winback.cli.common import (
    JsonOption,
    NowOption,
    Table,
    WorkspaceOption,
    console,
    now_option,
    open_workspace,
    print_json,
)

app = typer.Typer(
    help="Fit the purchase and spend models, and check them on a holdout period.",
    no_args_is_help=True,
)


def _describe(fit: dict[str, Any]) -> str:
    params = ", ".join(f"{k} = {v:.4g}" for k, v in fit["params"].items())
    line = (
        f"{fit['kind']} ({fit['time_unit']}) fitted {fit['fitted_at'][:10]} on "
        f"{fit['customers']} customers ({fit['quality'].get('repeat_buyers', 0)} repeat "
        f"buyers): {params}; log-likelihood {fit['log_likelihood']:.1f}"
    )
    if fit["spend_params"]:
        spend = ", ".join(f"{k} = {v:.4g}" for k, v in fit["spend_params"].items())
        line += f"\nGamma-Gamma spend: {spend}"
    elif fit["quality"].get("spend_error"):
        line += f"\nno spend model: {fit['quality']['spend_error']}"
    return line


@app.command("fit")
def fit(
    workspace: WorkspaceOption = None, now: NowOption = None, as_json: JsonOption = False
) -> None:
    """Fit the models on the purchase history and store the fit for `winback score`."""
    from winback.models.apply import ModelFit, fit_models

    ws = open_workspace(workspace)
    result: ModelFit = fit_models(ws.engine, ws.config.models, now_option(now, ws))
    if as_json:
        print_json(result.as_dict())
        return
    console.print(_describe(result.as_dict()), markup=False, highlight=False)
    console.print("Run `winback score` to give each customer their estimates.", markup=False)


@app.command("report")
def report(
    holdout_from: Annotated[
        str | None,
        typer.Option(
            "--holdout-from",
            help="First day of the holdout period (YYYY-MM-DD); default: halfway "
            "between the first purchase and now.",
            show_default=False,
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    now: NowOption = None,
    as_json: JsonOption = False,
) -> None:
    """The stored fit, and expected against actual repeat purchases in a holdout period."""
    from winback.models.report import models_report

    ws = open_workspace(workspace)
    start = None
    if holdout_from is not None:
        start = now_option(holdout_from, ws, option="--holdout-from")
    result = models_report(ws.engine, ws.config.models, now_option(now, ws), start)
    if as_json:
        print_json(result)
        return
    stored = result["fit"]
    if stored is None:
        console.print("No stored fit yet: run `winback models fit`.", markup=False)
    elif stored["error"]:
        console.print(f"The last fit failed: {stored['error']}", markup=False, highlight=False)
    else:
        console.print("Stored fit: " + _describe(stored), markup=False, highlight=False)
    calibration = result["calibration"]
    if calibration is None:
        console.print("No purchases: no calibration table.")
        return
    console.print(
        f"Calibration fit before {calibration['holdout_from']}: " + _describe(calibration["fit"]),
        markup=False,
        highlight=False,
    )
    table = Table(
        "repeat purchases in calibration",
        "customers",
        "actual",
        "expected",
        title=f"Mean repeat purchases per customer, {calibration['holdout_from']} to "
        f"{calibration['until']} ({calibration['holdout_length']:.1f} {calibration['time_unit']})",
    )
    for row in calibration["classes"]:
        if row["customers"]:
            table.add_row(
                row["frequency"],
                str(row["customers"]),
                f"{row['actual']:.2f}",
                f"{row['expected']:.2f}",
            )
    total = calibration["total"]
    table.add_row(
        "all", str(total["customers"]), f"{total['actual']:.0f}", f"{total['expected']:.1f}"
    )
    console.print(table)
