"""Reports: the numbers of the base and of the journeys, for the terminal, the dashboard
and the HTML report. :func:`base_health` is ``winback status``."""

from winback.reports.health import base_health

__all__ = ["base_health"]
