"""Dispatch to a real SMTP server on loopback: what arrives (headers, parts, signed
links, coupon codes), and what a refusal, a retry, a suppression or a crash leaves."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select, update

from tests.channels.smtp_server import CountingController, RecordingHandler, body_of
from tests.journeys.conftest import OFFER_FIRST, SIMPLE, START, add, outbox_rows, scored
from winback.channels import ENV_SMTP_URL
from winback.clock import written_date
from winback.compliance.suppression import suppress
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.journeys.flight import DispatchBusy, dispatch_lock
from winback.journeys.offers import PoolImport, export_offers_csv, import_pool_file
from winback.links import Links
from winback.store.schema import contacts, events, offers, outbox, suppressions
from winback.workspace import Workspace

DAY = timedelta(days=1)


def test_an_offer_email_arrives_with_its_parts_links_and_code(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, OFFER_FIRST)
    with ws.engine.begin() as c:
        camille = scored(c, email="camille@example.com", first_name="Camille", language="fr")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    result = dispatch(ws, now=START)
    assert result.sent == 1 and result.failed == 0
    [received] = smtp.received
    message = received.message
    [row] = outbox_rows(ws)
    assert row["status"] == "sent" and row["message_id"] == message["Message-ID"]
    assert received.rcpt_tos == ["camille@example.com"]
    assert message["Subject"] == "-20 % pour votre retour, Camille"
    assert message["X-Winback-Step"] == "miss-you"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = body_of(message, "plain")
    html = body_of(message, "html")
    with ws.engine.connect() as c:
        code, percent, expires = c.execute(
            select(offers.c.code, offers.c.percent, offers.c.expires_at)
        ).one()
        sent_events = c.execute(select(events.c.type, events.c.message_id)).all()
    assert re.fullmatch(r"WB(-[A-HJ-NP-Z2-9]{4}){3}", code) and percent == 20
    assert expires.date() == (START + 30 * DAY).date()
    assert code in text and code in html
    assert f"Valable jusqu'au {written_date(expires.date(), 'fr')}" in text
    assert [tuple(e) for e in sent_events] == [("sent", row["message_id"])]

    # Every link goes through a signed URL under public_url; clicks lead where the
    # template pointed, and the pixel names this message.
    links = Links.of(ws)
    hrefs = re.findall(r'href="([^"]+)"', html)
    images = re.findall(r'<img src="([^"]+)"', html)
    assert hrefs and images
    for url in hrefs + images:
        assert url.startswith(ws.config.workspace.public_url + "/")
    targets = set()
    for url in hrefs:
        kind, token = urlsplit(url).path.strip("/").split("/")
        if kind == "c":
            click = links.verify_click(token, now=START)
            assert click.message_id == row["message_id"]
            targets.add(click.url)
        elif kind == "u":
            assert links.verify_unsubscribe(token, now=START).contact_id == camille
        else:
            assert kind == "p" and links.verify_preferences(token, now=START).contact_id == camille
    # Analytics tools credit the visit to the journey and the step (issue 16: UTM).
    assert targets == {
        "https://shop.example.com/?utm_source=winback&utm_medium=email&utm_campaign=spring"
        "&utm_content=miss-you"
    }
    assert (
        links.verify_open(urlsplit(images[-1]).path.split("/")[-1], now=START).message_id
        == row["message_id"]
    )
    assert "https://shop.example.com/" not in text  # the text part's links are tracked too

    exported = io.StringIO()
    assert export_offers_csv(ws, exported) == 1
    [line] = list(csv.DictReader(io.StringIO(exported.getvalue())))
    assert (line["code"], line["email"], line["percent"], line["step"]) == (
        code,
        "camille@example.com",
        "20.0",
        "miss-you",
    )


def test_english_contacts_get_the_english_template(ws: Workspace, smtp: RecordingHandler) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="sam@example.com", first_name="Sam", language="en")
        scored(c, email="anon@example.com")  # no language: the workspace's (fr)
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    dispatch(ws, now=START)
    subjects = sorted(r.message["Subject"] for r in smtp.received)
    assert subjects == ["Bonjour, vous nous manquez", "Sam, we miss you"]


def test_a_5xx_refusal_is_a_hard_bounce_and_a_suppression(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="nobody@example.com")
        scored(c, email="fine@example.com")
    smtp.rcpt_answers["nobody@example.com"].append("550 5.1.1 no such user")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    result = dispatch(ws, now=START)
    assert (result.sent, result.failed) == (1, 1)
    with ws.engine.connect() as c:
        status = c.execute(
            select(contacts.c.email_status).where(contacts.c.email == "nobody@example.com")
        ).scalar_one()
        bounce = c.execute(select(events.c.type).where(events.c.type == "bounce_hard")).all()
        reasons = c.execute(select(suppressions.c.reason)).scalars().all()
    assert status == "bounced" and len(bounce) == 1 and reasons == ["bounce_hard"]
    failed = outbox_rows(ws, status="failed")[0]
    assert failed["error"].startswith("550")
    # At the next step the bounced contact has no channel left and leaves the journey.
    assert tick(ws, now=START + 30 * DAY).exited == 1


def test_a_4xx_is_retried_later_with_the_same_message(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="later@example.com")
    smtp.rcpt_answers["later@example.com"].append("451 4.7.1 try again later")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    assert dispatch(ws, now=START).retry == 1
    [row] = outbox_rows(ws)
    assert (
        row["status"] == "queued"
        and row["attempts"] == 1
        and row["due_at"] > START.replace(tzinfo=None)
    )
    assert dispatch(ws, now=START).sent == 0  # not due yet
    assert dispatch(ws, now=START + DAY).sent == 1
    [received] = smtp.received
    assert received.message["Message-ID"] == row["message_id"]


def test_dispatch_refuses_a_suppressed_or_unsubscribed_address(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        first = scored(c, email="first@example.com")
        scored(c, email="second@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    with ws.engine.begin() as c:  # after the tick, before the dispatch
        suppress(
            c, ws, channel="email", reason="complaint", now=START, actor="web", contact_id=first
        )
        c.execute(
            update(contacts)
            .where(contacts.c.email == "second@example.com")
            .values(email_status="unsubscribed")
        )
    result = dispatch(ws, now=START)
    assert result.cancelled == 2 and result.sent == 0 and smtp.received == []
    errors = sorted(row["error"] for row in outbox_rows(ws))
    assert errors == ["the email address is suppressed", "the email status is unsubscribed"]


def test_messages_are_claimed_in_batches_of_dispatch_batch(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash can leave at most one claim in doubt: the batch on the wire (the next
    one is claimed when its outcomes are recorded)."""
    config = ws.path / "winback.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("dispatch_batch = 100", "dispatch_batch = 3"), encoding="utf-8")
    in_doubt: list[int] = []

    class Watching(RecordingHandler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with ws.engine.connect() as c:
                count = select(func.count()).select_from(outbox)
                in_doubt.append(c.execute(count.where(outbox.c.status == "sending")).scalar_one())
            return await super().handle_DATA(server, session, envelope)

    handler = Watching()
    controller = CountingController(handler)
    controller.start()
    monkeypatch.setenv(ENV_SMTP_URL, f"smtp://127.0.0.1:{controller.port}")
    try:
        add(ws, SIMPLE)
        with ws.engine.begin() as c:
            for n in range(10):
                scored(c, email=f"p{n}@example.com")
        enrol(ws, "spring", now=START)
        tick(ws, now=START)
        reopened = Workspace.open(ws.path)  # with the new dispatch_batch
        result = dispatch(reopened, now=START)
        reopened.close()
    finally:
        controller.stop()
    assert result.sent == 10 and len(handler.received) == 10
    assert min(in_doubt) >= 1 and max(in_doubt) <= 3
    assert [row["status"] for row in outbox_rows(ws)] == ["sent"] * 10


def test_a_message_left_sending_becomes_unknown_and_is_never_resent(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(ws, SIMPLE)
    with ws.engine.begin() as c:
        scored(c, email="a@example.com")
        scored(c, email="b@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    with ws.engine.begin() as c:  # as a dispatcher killed during the SMTP exchange leaves it
        c.execute(update(outbox).where(outbox.c.id == 1).values(status="sending"))
    result = dispatch(ws, now=START)
    assert (result.recovered_unknown, result.sent) == (1, 1)
    assert [r.rcpt_tos for r in smtp.received] == [["b@example.com"]]
    assert [row["status"] for row in outbox_rows(ws)] == ["unknown", "sent"]
    assert dispatch(ws, now=START + DAY).sent == 0


def test_only_one_dispatcher_runs_at_a_time(ws: Workspace) -> None:
    with dispatch_lock(ws), pytest.raises(DispatchBusy, match="another `winback dispatch`"):
        dispatch(ws, now=START)


def test_pool_codes_are_handed_out_and_an_empty_pool_fails_clearly(
    ws: Workspace, smtp: RecordingHandler
) -> None:
    add(
        ws,
        OFFER_FIRST.replace(
            "offer: {percent: 20, valid_days: 30}",
            "offer: {percent: 20, valid_days: 30, pool: true}",
            1,
        ),
    )
    pool = ws.path / "pool.csv"
    pool.write_text("code,percent\nSHOP-AAA1,20\nSHOP-AAA2,40\n", encoding="utf-8")
    assert import_pool_file(ws, pool, now=START) == PoolImport(read=2, added=2)
    assert import_pool_file(ws, pool, now=START) == PoolImport(read=2, added=0)
    with ws.engine.begin() as c:
        scored(c, email="one@example.com")
        scored(c, email="two@example.com")
    enrol(ws, "spring", now=START)
    tick(ws, now=START)
    result = dispatch(ws, now=START)
    assert (result.sent, result.failed) == (1, 1)
    assert "SHOP-AAA1" in body_of(smtp.received[0].message, "plain")
    [failed] = outbox_rows(ws, status="failed")
    assert "the code pool has no unused code for 20 %" in failed["error"]


def test_utm_parameters_can_be_turned_off(ws: Workspace, smtp: RecordingHandler) -> None:
    config = ws.path / "winback.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("utm = true", "utm = false"), encoding="utf-8"
    )
    plain = Workspace.open(ws.path)
    try:
        add(plain, OFFER_FIRST)
        with plain.engine.begin() as c:
            scored(c, email="camille@example.com", first_name="Camille", language="fr")
        enrol(plain, "spring", now=START)
        tick(plain, now=START)
        assert dispatch(plain, now=START).sent == 1
        html = body_of(smtp.received[0].message, "html")
        links = Links.of(plain)
        clicks = [
            links.verify_click(urlsplit(url).path.split("/")[-1], now=START).url
            for url in re.findall(r'href="([^"]+/c/[^"]+)"', html)
        ]
        assert clicks and all("utm_" not in url for url in clicks)
    finally:
        plain.close()
