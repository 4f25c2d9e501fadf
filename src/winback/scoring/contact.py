"""One contact's scores and stage history, as plain data for ``winback contact show``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from winback.errors import NotFoundError
from winback.json_values import json_value
from winback.store.schema import contact_scores as scores_table
from winback.store.schema import contacts, stage_history


def contact_scores(connection: Connection, contact_id: int) -> dict[str, Any]:
    """``{"stage": ..., "scores": {...}, "stage_history": [...]}`` for one contact.

    ``stage`` is None and ``scores`` empty when the contact has not been scored yet
    (run ``winback score``). Times are ISO 8601 strings in UTC, dates ``YYYY-MM-DD``.
    """
    exists = connection.execute(
        select(contacts.c.id).where(contacts.c.id == contact_id)
    ).scalar_one_or_none()
    if exists is None:
        raise NotFoundError(f"no contact with id {contact_id}")
    row = (
        connection.execute(select(scores_table).where(scores_table.c.contact_id == contact_id))
        .mappings()
        .one_or_none()
    )
    history = connection.execute(
        select(stage_history.c.from_stage, stage_history.c.to_stage, stage_history.c.changed_on)
        .where(stage_history.c.contact_id == contact_id)
        .order_by(stage_history.c.changed_on, stage_history.c.id)
    ).mappings()
    scores = {k: json_value(v) for k, v in row.items() if k != "contact_id"} if row else {}
    if scores:
        scores["dormant_subscriber"] = bool(scores["dormant_subscriber"])
    return {
        "stage": scores.get("stage"),
        "scores": scores,
        "stage_history": [
            {"from": h["from_stage"], "to": h["to_stage"], "on": h["changed_on"].isoformat()}
            for h in history
        ],
    }
