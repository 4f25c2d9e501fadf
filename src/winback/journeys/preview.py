"""One message of a journey as a given contact would get it, without sending it
(``winback journey preview``) or sent to an address of the marketer's as a test
(``winback journey send-test``). Nothing is written: no outbox row, no offer code (the
offer shows ``PREVIEW``), no event, so a test is never counted in the results.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from winback.channels import OutgoingMessage, SendResult, make_message_id, sender_for
from winback.contacts import typed_address
from winback.domain import Channel
from winback.errors import NotFoundError
from winback.journeys.catalog import load_journeys, templates_of
from winback.journeys.offers import AssignedOffer
from winback.journeys.render import CONTACT_FIELDS, render, template_brand
from winback.links import Links
from winback.store.schema import contacts
from winback.workspace import Workspace

PREVIEW_CODE = "PREVIEW"


@dataclass(frozen=True)
class Preview:
    channel: str
    to_address: str
    subject: str | None
    text: str
    html: str | None


def preview_message(
    workspace: Workspace, name: str, step_id: str, address: str, *, now: datetime
) -> Preview:
    """The message of ``step_id`` of journey ``name`` for the contact with this email or
    phone, rendered as dispatch would render it (links included, not tracked)."""
    _, key = typed_address(workspace, address)
    columns = [contacts.c[field] for field in CONTACT_FIELDS]
    with workspace.engine.connect() as connection:
        _, journey = load_journeys(connection, name)[name]
        row = (
            connection.execute(
                select(contacts.c.id, *columns).where(
                    (contacts.c.email == key) | (contacts.c.phone == key)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFoundError(f"no contact with the address {key}")
    try:
        step = journey.step(step_id)
    except KeyError:
        steps = ", ".join(s.id for s in journey.all_steps)
        raise NotFoundError(f"journey {name!r} has no step {step_id!r} (steps: {steps})") from None
    channel = step.channel
    if channel == "best":
        channel = "email" if row["email"] else "sms"
    to_address = row["email"] if channel == "email" else row["phone"]
    if not to_address:
        raise NotFoundError(f"{key} has no {channel} address for step {step_id!r}")
    template = templates_of(workspace).load(step.template, channel, row["language"])
    links = Links.of(workspace)
    offer = None
    if step.offer is not None:
        sample = AssignedOffer(
            code=PREVIEW_CODE,
            percent=step.offer.percent,
            amount=step.offer.amount,
            expires_at=now + timedelta(days=step.offer.valid_days),
        )
        offer = sample.variables(template.language, step.offer.valid_days)
    variables = {
        "contact": {field: row[field] for field in CONTACT_FIELDS},
        "links": {
            "unsubscribe": links.unsubscribe_url(row["id"], Channel(channel)),
            "preferences": links.preferences_url(row["id"]),
            "survey": links.survey_url(row["id"], name),
        },
        "brand": template_brand(workspace.config.workspace),
        "offer": offer,
        "journey": name,
        "step": step.id,
    }
    rendered = render(template, variables)
    return Preview(channel, to_address, rendered.subject, rendered.text, rendered.html)


def send_test(
    workspace: Workspace,
    name: str,
    step_id: str,
    to: str,
    *,
    now: datetime,
    as_contact: str | None = None,
) -> tuple[Preview, SendResult]:
    """Send the step's message to ``to`` through the step's channel, rendered for
    ``as_contact`` (default: ``to`` itself, which must then be a contact), subject
    prefixed ``[TEST]`` and header ``X-Winback-Test: yes``. Nothing is recorded."""
    preview = preview_message(workspace, name, step_id, as_contact or to, now=now)
    _, target = typed_address(workspace, to)
    composer_from = workspace.config.email.from_
    message = OutgoingMessage(
        channel=Channel(preview.channel),
        contact_id=0,
        to_address=target,
        idempotency_key=f"test:{name}:{step_id}:{now.isoformat()}",
        subject=f"[TEST] {preview.subject}" if preview.subject else None,
        body_text=preview.text,
        body_html=preview.html,
        headers={"X-Winback-Test": "yes", "X-Winback-Journey": name, "X-Winback-Step": step_id},
        message_id=make_message_id(composer_from),
    )
    sender = sender_for(workspace, Channel(preview.channel))
    try:
        result = sender.send(message)
    finally:
        sender.close()
    return preview, result
