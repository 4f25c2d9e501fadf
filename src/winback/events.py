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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from winback.compliance.refusals import CONSIDERED, apply_refusals
from winback.store.contacts import insert_event_table, insert_events
from winback.store.history import stored_keys
from winback.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa


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
    fresh = _first_stored(connection, rows)
    added = insert_events(connection, rows)
    apply_refusals(connection, workspace, fresh, now=now, actor=actor, details=details)
    return added


def record_event_table(
    connection: Connection,
    workspace: Workspace,
    table: pa.Table,
    refusals: Sequence[Mapping[str, Any]],
    *,
    scratch: Path | None,
    now: datetime,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """The bulk form of :func:`record_events`, for the import of a block: ``table``
    holds columns of ``events`` and ``line`` (:func:`winback.store.contacts.insert_event_table`,
    which uses ``scratch``), and ``refusals`` the mappings of those among them that may refuse (the
    caller has them at hand already, sorted out while it read the block). Returns how
    many rows were new."""
    fresh = _first_stored(connection, refusals)
    added = insert_event_table(connection, table, scratch)
    apply_refusals(connection, workspace, fresh, now=now, actor=actor, details=details)
    return added


def _first_stored(
    connection: Connection, rows: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The events among ``rows`` that may refuse and that are about to be stored for the
    first time, in their order: those whose digest no stored event has, the first of
    two with one digest, and those without a digest (a refusal kept from a row that
    cannot be stored). A refusal acts when its event is first stored, not again when a
    webhook is delivered twice or a file imported twice."""
    candidates = [row for row in rows if row["type"] in CONSIDERED]
    known = stored_keys(
        connection, [row["dedup_key"] for row in candidates if row.get("dedup_key") is not None]
    )
    fresh = []
    for row in candidates:
        if row.get("dedup_key") is not None:
            key = bytes(row["dedup_key"])
            if key in known:
                continue
            known.add(key)
        fresh.append(row)
    return fresh
