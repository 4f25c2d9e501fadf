"""Recovery: what became of the rows a dead dispatcher left in ``sending``.

Only one dispatcher runs at a time per workspace (:func:`~winback.journeys.flight.
dispatch_lock`), so a ``sending`` row found at the start can only be a leftover of a dead
one. Its flight log (:mod:`winback.journeys.flight`) says what happened to each: never
handed over (back to the queue), answered by the server (its answer), or on the wire at
the kill (``unknown``: it may have gone out, so it is reported and never resent by
itself). A log that cannot be trusted leaves every such row ``unknown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from winback.channels import BatchResult, ChannelError, UnknownOutcome
from winback.journeys.flight import Flight
from winback.journeys.outbox import CONTENT, Prepared
from winback.store.chunks import chunks
from winback.store.schema import outbox


@dataclass(frozen=True)
class Stuck:
    """The leftovers of a dead dispatcher: how many rows, and those whose outcome is to
    be recorded (as the claim found them) with that outcome."""

    rows: int
    claimed: Sequence[Prepared]
    results: Sequence[BatchResult]


def settle(connection: Connection, flight: Flight | None) -> Stuck | None:
    """Put the rows in ``sending`` that were never handed over back in the queue, in the
    caller's transaction, and return the others with their outcome (the server's answer,
    or :class:`~winback.channels.UnknownOutcome`); None when no row was left."""
    stuck = [
        dict(row)
        for row in connection.execute(
            select(outbox).where(outbox.c.status == "sending").order_by(outbox.c.id)
        ).mappings()
    ]
    if not stuck:
        return None
    claimed: list[Prepared] = []
    results: list[BatchResult] = []
    unsent: list[int] = []
    in_doubt = UnknownOutcome("the dispatcher stopped while sending it")
    for row in stuck:
        outcome: BatchResult = in_doubt
        if flight is not None:
            if row["id"] not in flight.outcomes:
                outcome = ChannelError("never handed over")
            else:
                outcome = flight.outcomes[row["id"]] or in_doubt
        if isinstance(outcome, ChannelError):  # nothing of it left: queue it again
            unsent.append(row["id"])
            continue
        # As the claim found it: the attempt counts once, when recorded.
        claimed.append(({**row, "attempts": row["attempts"] - 1}, {k: row[k] for k in CONTENT}))
        results.append(outcome)
    for batch in chunks(unsent):
        connection.execute(
            update(outbox)
            .where(outbox.c.id.in_(batch))
            .values(status="queued", attempts=outbox.c.attempts - 1)
        )
    return Stuck(len(stuck), claimed, results)
