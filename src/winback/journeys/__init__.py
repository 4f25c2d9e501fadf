"""Win-back journeys: definitions (YAML), enrolment, the tick that advances contacts, the
outbox dispatcher, offers and coupon codes, previews and the simulator.

Public face (what the CLI and users call; each takes the workspace, and ``now`` when
time matters):

- the catalog: :func:`add_journey`, :func:`list_journeys`, :func:`copy_starter`;
- the run: :func:`enrol`, :func:`tick`, :func:`dispatch`, and
  :func:`tick_and_dispatch` (``winback run``, for cron);
- the controls: :func:`pause_journey`, :func:`resume_journey`, :func:`stop_journey`,
  :func:`unenroll`;
- the outbox: :func:`outbox_counts`, :func:`unknown_messages`;
- offers: :func:`import_pool_file`, :func:`export_offers_csv`;
- before sending: :func:`preview_message`, :func:`send_test`, :func:`simulate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from winback.lazy import lazy_face

if TYPE_CHECKING:
    from winback.journeys.catalog import (
        AddedJourney,
        JourneySummary,
        add_journey,
        copy_starter,
        list_journeys,
    )
    from winback.journeys.controls import (
        ControlResult,
        JourneyStateError,
        pause_journey,
        resume_journey,
        stop_journey,
        unenroll,
    )
    from winback.journeys.dispatcher import DispatchResult, dispatch, tick_and_dispatch
    from winback.journeys.engine import TickResult, tick
    from winback.journeys.enrolment import EnrolResult, enrol
    from winback.journeys.offers import PoolImport, export_offers_csv, import_pool_file
    from winback.journeys.outbox import (
        OutboxCounts,
        UnknownMessage,
        outbox_counts,
        unknown_messages,
    )
    from winback.journeys.preview import Preview, preview_message, send_test
    from winback.journeys.simulator import Simulation, simulate

# Loaded on first use: a part that needs one piece (the web server's exits, the doctor's
# template check) must not load the dispatcher, the channels and the simulator.
_HOMES = {
    "AddedJourney": "catalog",
    "add_journey": "catalog",
    "copy_starter": "catalog",
    "JourneySummary": "catalog",
    "list_journeys": "catalog",
    "ControlResult": "controls",
    "JourneyStateError": "controls",
    "pause_journey": "controls",
    "resume_journey": "controls",
    "stop_journey": "controls",
    "unenroll": "controls",
    "DispatchResult": "dispatcher",
    "dispatch": "dispatcher",
    "tick_and_dispatch": "dispatcher",
    "TickResult": "engine",
    "tick": "engine",
    "EnrolResult": "enrolment",
    "enrol": "enrolment",
    "PoolImport": "offers",
    "export_offers_csv": "offers",
    "import_pool_file": "offers",
    "OutboxCounts": "outbox",
    "UnknownMessage": "outbox",
    "outbox_counts": "outbox",
    "unknown_messages": "outbox",
    "Preview": "preview",
    "preview_message": "preview",
    "send_test": "preview",
    "Simulation": "simulator",
    "simulate": "simulator",
}
__all__ = [
    "AddedJourney",
    "ControlResult",
    "DispatchResult",
    "EnrolResult",
    "JourneyStateError",
    "JourneySummary",
    "OutboxCounts",
    "PoolImport",
    "Preview",
    "Simulation",
    "TickResult",
    "UnknownMessage",
    "add_journey",
    "copy_starter",
    "dispatch",
    "enrol",
    "export_offers_csv",
    "import_pool_file",
    "list_journeys",
    "outbox_counts",
    "pause_journey",
    "preview_message",
    "resume_journey",
    "send_test",
    "simulate",
    "stop_journey",
    "tick",
    "tick_and_dispatch",
    "unenroll",
    "unknown_messages",
]

__getattr__ = lazy_face(__name__, _HOMES)
