"""One bad row never stops the sending (issue 15): a message that cannot be rendered or
addressed fails alone, with its reason in the outbox, and the rest of its batch goes;
`journey add` refuses a template that breaks on a contact with empty fields."""

from __future__ import annotations

import pytest

from tests.channels.smtp_server import RecordingHandler
from tests.journeys.conftest import SIMPLE, START, add, journey_file, outbox_rows, scored
from winback.journeys.catalog import add_journey
from winback.journeys.definition import JourneyError
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.journeys.render import STARTER_TEMPLATES
from winback.workspace import Workspace

AGE_SUBJECT = 'subject: "{{ 2026 - contact.birth_year }} ans, ça se fête !"'


def age_template(workspace: Workspace) -> None:
    """miss_you, in the workspace's own templates, with a subject that needs a birth year."""
    workspace.templates_dir.mkdir(exist_ok=True)
    for language in ("en", "fr"):
        source = (STARTER_TEMPLATES / f"miss_you.{language}.mjml").read_text(encoding="utf-8")
        lines = source.splitlines()
        lines[1] = AGE_SUBJECT
        target = workspace.templates_dir / f"miss_you.{language}.mjml"
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_journey_add_refuses_a_template_that_breaks_without_a_birth_year(ws: Workspace) -> None:
    age_template(ws)
    with pytest.raises(JourneyError) as error:
        add_journey(ws, journey_file(ws, SIMPLE), now=START)
    message = str(error.value)
    assert "journey.yaml" in message and "steps[0].template" in message
    assert "miss_you." in message and "(subject)" in message
    assert "contact.birth_year is empty" in message


def test_a_contact_without_a_birth_year_fails_alone_and_the_batch_is_sent(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)  # accepted with the starter template, edited afterwards
    age_template(ws)
    with ws.engine.begin() as c:
        scored(c, email="ana@example.com", birth_year=1990, language="fr")
        scored(c, email="bruno@example.com", language="fr")  # no birth year
        scored(c, email="chloe@example.com", birth_year=1985, language="fr")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)

    result = dispatch(ws, now=START)
    assert (result.sent, result.failed, result.unknown) == (2, 1, 0)
    assert [r.message["Subject"] for r in smtp.received] == [
        "36 ans, ça se fête !",
        "41 ans, ça se fête !",
    ]
    rows = outbox_rows(ws)
    assert [row["status"] for row in rows] == ["sent", "failed", "sent"]
    assert "miss_you.fr.mjml (subject)" in rows[1]["error"]
    assert "NoneType" in rows[1]["error"]
    # A re-run does not stumble on it again.
    assert dispatch(ws, now=START).sent == 0


def test_an_address_that_cannot_be_written_fails_alone(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="lena@bücher.example")
        scored(c, email="josé@bücher.example")
        scored(c, email="theo@bü☃cher.example")
        scored(c, email="marc@example.org")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)

    result = dispatch(ws, now=START)
    assert (result.sent, result.failed, result.unknown) == (3, 1, 0)
    assert [r.rcpt_tos for r in smtp.received] == [
        ["lena@xn--bcher-kva.example"],
        ["josé@xn--bcher-kva.example"],  # the server on loopback offers SMTPUTF8
        ["marc@example.org"],
    ]
    rows = outbox_rows(ws)
    assert [row["status"] for row in rows] == ["sent", "sent", "failed", "sent"]
    assert "IDNA" in rows[2]["error"]
    # Stored as the contact gave it: the punycode is the wire's business only.
    assert rows[0]["to_address"] == "lena@bücher.example"
