"""The one path that writes events: store them once (a row whose ``dedup_key`` is stored
already is skipped), then hand them to :func:`winback.compliance.refusals.apply_refusals`,
which turns an unsubscribe, a hard bounce, a complaint, a STOP reply or too many soft
bounces into a status change and a suppression. Every writer calls it: the import of
events, the dispatcher, the tracking server, the preference page and the webhooks; so no
writer can store a refusal and forget to act on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from winback.compliance.refusals import apply_refusals
from winback.store.contacts import insert_event_rows, insert_events
from winback.workspace import Workspace


def record_events(
    connection: Connection,
    workspace: Workspace,
    rows: Sequence[dict[str, Any]],
    *,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Store events given as mappings of column names (a missing column is NULL) and
    apply the refusals among them, in the caller's transaction; returns how many rows
    were new. ``actor`` and ``details`` go to the audit records of the refusals."""
    added = insert_events(connection, rows)
    apply_refusals(connection, workspace, rows, now=now, actor=actor, details=details)
    return added


def record_event_rows(
    connection: Connection,
    workspace: Workspace,
    fields: Sequence[str],
    records: Sequence[tuple[Any, ...]],
    refusals: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """The bulk form of :func:`record_events`, for the import of a block: ``records``
    are tuples in the order of ``fields`` (``dedup_key`` last), and ``refusals`` the
    mappings of those among them that may refuse (the caller has them at hand already,
    sorted out while it read the block). Returns how many records were new."""
    added = insert_event_rows(connection, fields, records)
    apply_refusals(connection, workspace, refusals, now=now, actor=actor, details=details)
    return added
