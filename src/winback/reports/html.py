"""``winback report``: the dashboard's base and journey views as one self-contained HTML
file (plotly.js inlined, no request to any server), for the manager who will not log in.
"""

from __future__ import annotations

from datetime import date, datetime

from winback.reports import views
from winback.workspace import Workspace


def render_report(workspace: Workspace, now: datetime, since: date | None = None) -> str:
    """The report's HTML; ``since`` starts the period of the moves between stages."""
    from winback.web.dashboard import page_templates, plotly_js
    from winback.web.dashboard_words import WORDS

    config = workspace.config.workspace
    words = WORDS[config.language]
    base = views.base_view(workspace, now, words, since)
    journeys = views.journeys_view(workspace, now, words)
    charts = base["charts"] + journeys["charts"]
    script = plotly_js().read_text(encoding="utf-8").replace("</script", "<\\/script")
    return (
        page_templates()
        .get_template("dashboard/report.html.j2")
        .render(
            lang=config.language,
            t=words,
            title=f"{words['report_title']} · {config.name}",
            root="",
            nav=(),
            brand={"name": config.brand_name, "color": config.brand_color},
            base=base,
            journeys=journeys,
            charts=charts,
            inline_js=script,
            generated=now.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )
