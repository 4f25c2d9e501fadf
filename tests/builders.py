"""Hand-built scenarios: insert contacts and events straight into a workspace's store,
for tests that are about what happens after an import (scoring, journeys, compliance).

    with workspace.engine.begin() as connection:
        alice = add_contact(connection, email="alice@example.com", created_at=day(2024, 1, 5))
        add_event(connection, alice, "purchase", day(2024, 3, 1), amount=42.0)
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from winback.store.contacts import dedup_key
from winback.store.schema import contacts, events

_serial = itertools.count()


def day(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """An aware UTC datetime, noon by default so a day boundary is never in doubt."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def add_contact(
    connection: Connection,
    *,
    email: str | None = None,
    phone: str | None = None,
    created_at: datetime,
    email_status: str | None = None,
    sms_status: str | None = None,
    **fields: Any,
) -> int:
    """Insert a contact; an address given without a status is subscribed."""
    row = {
        "email": email,
        "phone": phone,
        "created_at": _naive(created_at),
        "updated_at": _naive(created_at),
        "email_status": email_status or ("subscribed" if email else "none"),
        "sms_status": sms_status or ("subscribed" if phone else "none"),
        **fields,
    }
    result = connection.execute(insert(contacts).returning(contacts.c.id), row)
    return int(result.scalar_one())


def add_event(
    connection: Connection,
    contact_id: int,
    type: str,
    at: datetime,
    *,
    channel: str | None = None,
    **fields: Any,
) -> None:
    """Insert one event; the channel defaults to what the type usually comes from."""
    default_channel = {"purchase": "store", "visit": "web", "login": "app", "reply": "sms"}
    row = {
        "contact_id": contact_id,
        "type": type,
        "channel": channel or default_channel.get(type, "email"),
        "occurred_at": _naive(at),
        "dedup_key": dedup_key("test", next(_serial)),
        **fields,
    }
    connection.execute(insert(events), row)
