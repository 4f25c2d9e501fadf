"""One contact as a person sees it: ``winback contact show`` and the GDPR export start
here."""

from __future__ import annotations

from typing import Any

from winback.errors import NotFoundError
from winback.ingest.values import normalise_email, normalise_phone
from winback.scoring import contact_scores
from winback.store import contacts as store
from winback.workspace import Workspace

_HIDDEN = ("key_hash",)


def normalise_address(address: str, region: str) -> str:
    """An email or a phone as the store keys it."""
    if "@" in address:
        return normalise_email(address)
    return normalise_phone(address, region)


def contact_profile(workspace: Workspace, address: str, *, events: int = 20) -> dict[str, Any]:
    """The contact with this email or phone: attributes, statuses, stage, scores, stage
    history and latest events (``stage`` is None until ``winback score`` has run)."""
    try:
        key = normalise_address(address, workspace.config.workspace.default_region)
    except ValueError as exc:
        raise NotFoundError(f"{address!r} is not an email or phone number: {exc}") from None
    with workspace.engine.connect() as connection:
        contact = store.find_contact(connection, key)
        if contact is None:
            raise NotFoundError(f"no contact with the address {key}")
        recent = store.contact_events(connection, contact["id"], events)
        scored = contact_scores(connection, contact["id"])
    for name in _HIDDEN:
        contact.pop(name, None)
    for event in recent:
        event.pop("dedup_key", None)
    return {
        "contact": contact,
        "stage": scored["stage"],
        "scores": scored["scores"],
        "stage_history": scored["stage_history"],
        "events": recent,
    }
