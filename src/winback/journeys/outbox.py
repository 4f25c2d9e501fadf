"""The outbox as the user looks at it: how many messages in each status, and the ones a
crash left in doubt (``winback outbox [--unknown]``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from winback.clock import from_db
from winback.store.schema import outbox
from winback.workspace import Workspace


def unknown_messages(workspace: Workspace) -> list[dict[str, Any]]:
    """The messages whose fate is unknown (``winback outbox --unknown``): check them
    with the provider before deciding anything."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(
                outbox.c.id,
                outbox.c.journey,
                outbox.c.step_id,
                outbox.c.channel,
                outbox.c.to_address,
                outbox.c.message_id,
                outbox.c.due_at,
                outbox.c.error,
            )
            .where(outbox.c.status == "unknown")
            .order_by(outbox.c.id)
        ).mappings()
        return [{**row, "due_at": from_db(row["due_at"])} for row in rows]


def outbox_counts(workspace: Workspace) -> dict[str, int]:
    """How many outbox rows are in each status."""
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            select(outbox.c.status, func.count()).group_by(outbox.c.status)
        ).all()
    return {status: count for status, count in rows}
