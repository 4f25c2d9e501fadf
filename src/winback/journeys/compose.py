"""What a message of the outbox says: a journey's step (or the retention purge's last
question) rendered for its contact, with its own Message-ID, signed and tracked links,
UTM parameters and offer code. The dispatcher asks; this module renders."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from winback.channels import make_message_id
from winback.clock import local_date, written_date
from winback.compliance.retention import ASK_STEP, ASK_TEMPLATE
from winback.domain import Channel
from winback.journeys.catalog import load_journeys, templates_of
from winback.journeys.definition import Journey, Step
from winback.journeys.offers import assign_offer
from winback.journeys.render import (
    CONTACT_FIELDS,
    CompiledTemplate,
    TemplateSet,
    render,
    template_brand,
)
from winback.links import Links
from winback.workspace import Workspace


class Unsendable(Exception):
    """A row whose message cannot be built (its journey or step is gone)."""


class Composer:
    """Renders the messages of one dispatch run (templates compiled once per run)."""

    def __init__(self, workspace: Workspace, now: datetime) -> None:
        self.workspace = workspace
        self.now = now
        self.links = Links.of(workspace)
        self.templates: TemplateSet = templates_of(workspace)
        self.from_address = workspace.config.email.from_
        self.ask_ahead = workspace.config.retention.ask_ahead
        self.tz = workspace.config.workspace.tz
        self.brand = template_brand(workspace.config.workspace)
        with workspace.engine.connect() as connection:
            self.journeys: dict[str, Journey] = {
                name: journey for name, (_, journey) in load_journeys(connection).items()
            }
        self.compiled: dict[tuple[str, str, str | None], CompiledTemplate] = {}

    def template(self, name: str, channel: str, language: str | None) -> CompiledTemplate:
        key = (name, channel, language)
        template = self.compiled.get(key)
        if template is None:  # one look in the folders per template and language
            template = self.compiled[key] = self.templates.load(*key)
        return template

    def content(self, connection: Connection, row: Mapping[str, Any]) -> dict[str, Any]:
        """The rendered message of a row, with its own Message-ID and tracked links: a
        journey's step, or the retention purge's last question."""
        channel = row["channel"]
        contact_id = row["contact_id"]
        contact = {name: row[f"contact_{name}"] for name in CONTACT_FIELDS}
        message_id = make_message_id(self.from_address)
        links = {
            "unsubscribe": self.links.unsubscribe_url(contact_id, Channel(channel)),
            "preferences": self.links.preferences_url(contact_id),
        }
        if row["journey"] is None and row["step_id"] == ASK_STEP:
            template = self.template(ASK_TEMPLATE, channel, contact["language"])
            links["stay"] = self.links.stay_url(contact_id)
            erase_on = local_date(self.now + self.ask_ahead, self.tz)
            variables: dict[str, Any] = {
                "erase_on": erase_on,
                "erase_date": written_date(erase_on, template.language),
            }
            headers = {"X-Winback-Step": ASK_STEP}
        else:
            journey, step = self.step_of(row)
            template = self.template(step.template, channel, contact["language"])
            offer = None
            if step.offer is not None:
                assigned = assign_offer(
                    connection,
                    contact_id=contact_id,
                    enrollment_id=row["enrollment_id"],
                    journey=journey.name,
                    step_id=step.id,
                    offer=step.offer,
                    now=self.now,
                )
                offer = assigned.variables(template.language, step.offer.valid_days)
            links["survey"] = self.links.survey_url(contact_id, journey.name, message_id=message_id)
            variables = {"offer": offer, "journey": journey.name, "step": step.id}
            headers = {"X-Winback-Journey": journey.name, "X-Winback-Step": step.id}
        rendered = render(
            template, {"contact": contact, "links": links, "brand": self.brand, **variables}
        )
        utm = self.utm(channel, variables.get("journey"), variables.get("step"))
        return {
            "to_address": contact["email"] if channel == "email" else contact["phone"],
            "subject": rendered.subject,
            "body_text": self.links.track_text(rendered.text, message_id, utm=utm),
            "body_html": (
                self.links.track_html(rendered.html, message_id, utm=utm) if rendered.html else None
            ),
            "headers": headers,
            "message_id": message_id,
        }

    def utm(self, channel: str, journey: str | None, step: str | None) -> dict[str, str] | None:
        """The UTM parameters of a message's links (``[links]``), or None when off."""
        settings = self.workspace.config.links
        if not settings.utm or journey is None:
            return None
        return {
            "utm_source": settings.utm_source,
            "utm_medium": channel,
            "utm_campaign": journey,
            "utm_content": step or "",
        }

    def step_of(self, row: Mapping[str, Any]) -> tuple[Journey, Step]:
        """The journey and step an outbox row was queued for."""
        journey = self.journeys.get(row["journey"])
        if journey is None:
            raise Unsendable(f"journey {row['journey']!r} no longer exists")
        try:
            return journey, journey.step(row["step_id"])
        except KeyError:
            raise Unsendable(
                f"step {row['step_id']!r} is not in journey {journey.name!r}"
            ) from None
