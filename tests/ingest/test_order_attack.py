"""Attacks on "each row acts alone, in file order, whatever the batches": files whose
result must not depend on where their batches or blocks end, and refusals that must be
neither lost nor applied twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.ingest.conftest import NOW
from winback.ingest import import_events, pipeline, reader
from winback.store.schema import audit, contacts, suppressions
from winback.workspace import Workspace


def _small_batches(monkeypatch: pytest.MonkeyPatch, rows: int) -> None:
    """Batches (row path) and blocks (CSV, Parquet) of about ``rows`` rows."""
    monkeypatch.setattr(pipeline, "BATCH_ROWS", rows)
    monkeypatch.setattr(reader, "BLOCK_ROWS", rows)
    monkeypatch.setattr(reader, "_CSV_READ_BYTES", 64)


def _state(workspace: Workspace) -> dict[str, Any]:
    """What a user checks after an import: statuses, audit trail, suppressions."""
    with workspace.engine.connect() as connection:
        people = connection.execute(
            select(
                contacts.c.email, contacts.c.phone, contacts.c.email_status, contacts.c.sms_status
            ).order_by(contacts.c.email, contacts.c.phone)
        ).all()
        trail = connection.execute(
            select(audit.c.contact_id, audit.c.action, audit.c.reason)
            .where(audit.c.action.in_(["status_change", "suppress"]))
            .order_by(audit.c.id)
        ).all()
        listed = connection.execute(
            select(suppressions.c.channel, suppressions.c.reason).order_by(
                suppressions.c.channel, suppressions.c.reason
            )
        ).all()
    return {"contacts": people, "audit": trail, "suppressions": listed}


# Three soft bounces in three days reach the limit (3 in 30 days); a fourth, months
# later, stands alone in its window.
SOFT_THEN_LATE = (
    "email,type,timestamp\n"
    "ann@example.com,soft_bounce,2026-01-01 10:00\n"
    "ann@example.com,soft_bounce,2026-01-02 10:00\n"
    "ann@example.com,soft_bounce,2026-01-03 10:00\n"
    "bob@example.com,open,2026-01-03 10:00\n"
    "ann@example.com,soft_bounce,2026-05-01 10:00\n"
)


@pytest.mark.parametrize("rows", [3, None], ids=["small-batches", "one-batch"])
def test_a_soft_bounce_limit_reached_mid_file_stands_whatever_the_batches(
    base: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int | None
) -> None:
    """ann's third soft bounce reaches the limit: bounced, as had the file stopped
    there; a later soft bounce outside the window does not undo it. (One batch used
    to count only the window of the newest soft bounce, and lost the refusal.)"""
    if rows:
        _small_batches(monkeypatch, rows)
    path = tmp_path / "events.csv"
    path.write_text(SOFT_THEN_LATE)
    import_events(base, path, now=NOW)
    state = _state(base)
    assert ("ann@example.com", "+33612345678", "bounced", "none") in state["contacts"]
    assert ("email", "bounce_soft") in state["suppressions"]


@pytest.mark.parametrize("rows", [3, None], ids=["small-batches", "one-batch"])
def test_soft_bounces_in_reverse_time_order_reach_the_limit_as_they_come(
    base: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: int | None
) -> None:
    """Newest first: each soft bounce, alone, sees only those before it in the file
    that lie in its own window, so the limit is reached by the third row whatever the
    batches."""
    if rows:
        _small_batches(monkeypatch, rows)
    path = tmp_path / "events.csv"
    path.write_text(
        "email,type,timestamp\n"
        "ann@example.com,soft_bounce,2026-01-03 10:00\n"
        "ann@example.com,soft_bounce,2026-01-02 10:00\n"
        "ann@example.com,soft_bounce,2026-01-01 10:00\n"
        "ann@example.com,soft_bounce,2026-01-04 10:00\n"
    )
    import_events(base, path, now=NOW)
    state = _state(base)
    assert ("ann@example.com", "+33612345678", "bounced", "none") in state["contacts"]
