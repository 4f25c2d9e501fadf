"""One contact as a person sees it: ``winback contact show`` and the GDPR export start
here."""

from __future__ import annotations

from typing import Any

from winback.addresses import channel_of, normalise_address
from winback.errors import NotFoundError
from winback.scoring import contact_scores
from winback.store import contacts as store
from winback.store.history import contact_events
from winback.workspace import Workspace

_HIDDEN = ("key_hash",)


def typed_address(workspace: Workspace, text: str) -> tuple[str, str]:
    """The sending channel (``email`` or ``sms``) and normalised form of an address the
    user typed, for the commands that take one (``contact show``, ``suppress``, ``gdpr``,
    ``audit --contact``); a text that is neither is a :class:`NotFoundError`."""
    try:
        address = normalise_address(text, workspace.config.workspace.default_region)
    except ValueError as exc:
        raise NotFoundError(f"{text!r} is not an email or a phone number: {exc}") from None
    return channel_of(address), address


def contact_profile(workspace: Workspace, address: str, *, events: int = 20) -> dict[str, Any]:
    """The contact with this email or phone: attributes, statuses, stage, scores, stage
    history and latest events (``stage`` is None until ``winback score`` has run)."""
    _, key = typed_address(workspace, address)
    with workspace.engine.connect() as connection:
        contact = store.find_contact(connection, key)
        if contact is None:
            raise NotFoundError(f"no contact with the address {key}")
        recent = contact_events(connection, contact["id"], events)
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
