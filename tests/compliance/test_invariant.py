"""The compliance invariant as a property: whatever the order of imports, refusals
(unsubscribes, hard and soft bounces, complaints, STOP replies), enrolments, ticks,
dispatches, purges and erasures, and however the clock moves, no message is ever
delivered to a suppressed address or to someone without consent, and every contact has
exactly one stage.

Email goes to a real SMTP server on loopback, SMS to the file channel. What counts as a
refusal is tracked by the test itself (``refused``), from what it did, not from what
winback says it stored: the oracle is independent of the code under test. The store is
SQLite (one writer, many steps per example: PostgreSQL would only make it slower).
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import textwrap
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from tests.channels.smtp_server import RecordingHandler
from tests.journeys.conftest import START
from winback.channels import OUTBOX_FILES_DIR
from winback.channels.file import SMS_LOG
from winback.compliance.gdpr import erase_person
from winback.compliance.retention import purge
from winback.compliance.suppression import address_hash
from winback.compliance.suppression_list import add_suppression
from winback.ingest.contacts import import_contacts
from winback.ingest.events import import_events
from winback.journeys.catalog import add_journey
from winback.journeys.dispatcher import dispatch
from winback.journeys.engine import tick
from winback.journeys.enrolment import enrol
from winback.scoring import score
from winback.store.schema import contact_scores, contacts, enrollments, suppressions
from winback.workspace import ENV_DATABASE_URL, Workspace

# (email, phone): six people, two without a phone.
PEOPLE = [
    ("ana@example.com", "+33611000001"),
    ("ben@example.com", "+33611000002"),
    ("chloe@example.com", None),
    ("dan@example.com", "+33611000004"),
    ("eve@example.com", None),
    ("farid@example.com", "+33611000006"),
]
person = st.integers(0, len(PEOPLE) - 1)
channel = st.sampled_from(["email", "sms"])
STOP_TEXTS = ["STOP", "Stop.", "arrêt", "STOP SMS", "unsubscribe"]
OTHER_TEXTS = ["merci !", "Stop by tomorrow?", "oui"]

JOURNEY = """
    name: spring
    audience: {stages: [prospect, active, at_risk, dormant, lost]}
    holdout: 0
    exit_on: [click]
    steps:
      - id: hello
        channel: email
        template: miss_you
        wait: 2d
      - id: nudge
        channel: sms
        template: offer
        offer: {percent: 20, valid_days: 30}
        wait: 2d
      - id: last
        channel: best
        template: goodbye
        wait: 2d
    after_last_step: sunset
"""


class Compliance(RuleBasedStateMachine):
    smtp: RecordingHandler

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="winback-invariant-"))
        self.ws = Workspace.init(self.folder / "ws", "ecommerce")
        config = self.ws.path / "winback.toml"
        text = config.read_text(encoding="utf-8")
        text = text.replace("rate_per_second = 50", "rate_per_second = 5000")
        config.write_text(text.replace('erase_after = "3y"', 'erase_after = "20d"'), "utf-8")
        self.ws.close()
        self.ws = Workspace.open(self.ws.path)
        journey = self.folder / "spring.yaml"
        journey.write_text(textwrap.dedent(JOURNEY), encoding="utf-8")
        add_journey(self.ws, journey, now=START)
        self.now = START
        self.files = 0
        self.smtp.received.clear()
        self.smtp.rcpt_answers.clear()
        self.seen_email = 0
        self.seen_sms: set[int] = set()
        # The oracle: addresses that said no (or were let go), and those that ever said yes.
        self.refused: dict[str, set[str]] = {"email": set(), "sms": set()}
        self.consented: dict[str, set[str]] = {"email": set(), "sms": set()}
        self.soft: dict[str, list[datetime]] = defaultdict(list)
        self.scripted: dict[str, list[str]] = defaultdict(list)
        self.scored: set[int] = set()  # the live contacts of the last score run

    def teardown(self) -> None:
        self.ws.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers ---------------------------------------------------------------------

    def _file(self, header: list[str], rows: list[list[Any]]) -> Path:
        self.files += 1
        path = self.folder / f"input-{self.files}.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def _live(self, who: int) -> bool:
        email = PEOPLE[who][0]
        with self.ws.engine.connect() as c:
            found = c.execute(select(contacts.c.id).where(contacts.c.email == email)).first()
        return found is not None

    def _address(self, who: int, on: str) -> str | None:
        email, phone = PEOPLE[who]
        return email if on == "email" else phone

    def _refuse_all(self, who: int) -> None:
        for on in ("email", "sms"):
            address = self._address(who, on)
            if address:
                self.refused[on].add(address)
                self.soft.pop(address, None)

    def _event(self, who: int, on: str, kind: str, text: str = "") -> bool:
        """Import one event of the person, a minute ago; True when they are in the base
        (otherwise the row is quarantined and nothing happens)."""
        address = self._address(who, on)
        if address is None:
            return False
        live = self._live(who)
        at = (self.now - timedelta(minutes=1)).isoformat()
        column = "email" if on == "email" else "phone"
        path = self._file(
            [column, "type", "channel", "date", "text"], [[address, kind, on, at, text]]
        )
        import_events(self.ws, path, now=self.now)
        return live

    # -- rules -----------------------------------------------------------------------

    @initialize(
        email_status=st.sampled_from(["subscribed", ""]),
        sms_status=st.sampled_from(["subscribed", ""]),
    )
    def first_import(self, email_status: str, sms_status: str) -> None:
        """Most bases start as one subscribed list."""
        self.import_people(set(range(len(PEOPLE))), email_status, sms_status)

    @rule(
        who=st.sets(person, min_size=1),
        email_status=st.sampled_from(["subscribed", "pending", "unsubscribed", ""]),
        sms_status=st.sampled_from(["subscribed", "pending", ""]),
    )
    def import_people(self, who: set[int], email_status: str, sms_status: str) -> None:
        rows = [[PEOPLE[p][0], PEOPLE[p][1] or "", email_status, sms_status] for p in sorted(who)]
        path = self._file(["email", "phone", "email_status", "sms_status"], rows)
        import_contacts(self.ws, path, now=self.now)
        for p in who:
            email, phone = PEOPLE[p]
            # An address with no status column imports as subscribed (import.default_consent).
            if email_status in ("subscribed", ""):
                self.consented["email"].add(email)
            if email_status == "unsubscribed":
                self.refused["email"].add(email)
            if phone and sms_status in ("subscribed", ""):
                self.consented["sms"].add(phone)

    @rule(who=person, on=channel, kind=st.sampled_from(["unsubscribe", "bounce_hard", "complaint"]))
    def refusal(self, who: int, on: str, kind: str) -> None:
        if self._event(who, on, kind):
            self.refused[on].add(self._address(who, on))  # type: ignore[arg-type]

    @rule(who=person)
    def soft_bounce(self, who: int) -> None:
        email = PEOPLE[who][0]
        if self._event(who, "email", "bounce_soft"):
            times = self.soft[email]
            at = self.now - timedelta(minutes=1)
            if at in times:
                return  # the same event imported again: stored once, counted once
            times.append(at)
            window = self.ws.config.bounces.soft_window
            if sum(1 for t in times if t > times[-1] - window) >= self.ws.config.bounces.soft_limit:
                self.refused["email"].add(email)

    @rule(who=person, text=st.sampled_from(STOP_TEXTS + OTHER_TEXTS))
    def sms_reply(self, who: int, text: str) -> None:
        if self._event(who, "sms", "reply", text) and text in STOP_TEXTS:
            self.refused["sms"].add(self._address(who, "sms"))  # type: ignore[arg-type]

    @rule(who=person)
    def click(self, who: int) -> None:
        self._event(who, "email", "click")

    @rule(who=person, answer=st.sampled_from(["550 5.1.1 no such user", "451 4.2.1 try later"]))
    def mailbox_answers(self, who: int, answer: str) -> None:
        """The next delivery to this address is refused for good (550: a hard bounce) or
        for now (451: the message waits in the outbox for a retry)."""
        email = PEOPLE[who][0]
        self.smtp.rcpt_answers[email].append(answer)
        self.scripted[email].append(answer)

    @rule(who=person, on=channel)
    def suppress_by_hand(self, who: int, on: str) -> None:
        address = self._address(who, on)
        if address:
            add_suppression(self.ws, address, reason="manual", now=self.now)
            self.refused[on].add(address)

    @rule()
    def score_and_enrol(self) -> None:
        score(self.ws, now=self.now)
        with self.ws.engine.connect() as c:
            live = contacts.c.erased_at.is_(None)
            self.scored = set(c.execute(select(contacts.c.id).where(live)).scalars())
        enrol(self.ws, "spring", now=self.now)

    @rule()
    def tick(self) -> None:
        tick(self.ws, now=self.now)
        with self.ws.engine.connect() as c:
            let_go = c.execute(
                select(contacts.c.email, contacts.c.phone)
                .join(enrollments, enrollments.c.contact_id == contacts.c.id)
                .where(enrollments.c.status == "sunset")
            ).all()
        for email, phone in let_go:
            if email:
                self.refused["email"].add(email)
            if phone:
                self.refused["sms"].add(phone)

    @rule()
    def dispatch(self) -> None:
        dispatch(self.ws, now=self.now)
        # A 550 that was used is a hard bounce: the address is refused from now on.
        for address, scripted in self.scripted.items():
            used = scripted[: len(scripted) - len(self.smtp.rcpt_answers[address])]
            if any(answer.startswith("550") for answer in used):
                self.refused["email"].add(address)
        self.check_deliveries()

    @rule(hours=st.sampled_from([1, 24, 72]))
    def cron(self, hours: int) -> None:
        """What cron does every few hours: score, enrol, tick and dispatch, then wait."""
        self.score_and_enrol()
        self.tick()
        self.dispatch()
        self.now += timedelta(hours=hours)

    @rule(hours=st.sampled_from([1, 5, 24, 72, 24 * 15]))
    def advance(self, hours: int) -> None:
        self.now += timedelta(hours=hours)

    @rule()
    def purge(self) -> None:
        before = {p for p in range(len(PEOPLE)) if self._live(p)}
        purge(self.ws, now=self.now)
        for p in before:
            if not self._live(p):
                self._refuse_all(p)

    @rule(who=person)
    def erase(self, who: int) -> None:
        erase_person(self.ws, PEOPLE[who][0], now=self.now)
        phone = PEOPLE[who][1]
        if phone:
            erase_person(self.ws, phone, now=self.now)
        self._refuse_all(who)

    # -- what must always hold -----------------------------------------------------

    def _delivered(self) -> Iterator[tuple[str, str]]:
        """The messages delivered since the last look: (channel, address)."""
        for received in self.smtp.received[self.seen_email :]:
            for address in received.rcpt_tos:
                yield "email", address
        self.seen_email = len(self.smtp.received)
        log = self.ws.path / OUTBOX_FILES_DIR / SMS_LOG
        if log.exists():
            for line in log.read_text(encoding="utf-8").splitlines():
                sms = json.loads(line)
                if sms["outbox_id"] not in self.seen_sms:
                    self.seen_sms.add(sms["outbox_id"])
                    yield "sms", sms["to"]

    def check_deliveries(self) -> None:
        with self.ws.engine.connect() as c:
            for on, address in self._delivered():
                assert address not in self.refused[on], f"{on} to {address}, who refused"
                assert address in self.consented[on], f"{on} to {address}, never consented"
                digest = address_hash(self.ws, on, address)
                blocked = c.execute(
                    select(suppressions.c.reason).where(
                        suppressions.c.channel == on, suppressions.c.address_hash == digest
                    )
                ).first()
                assert blocked is None, f"{on} to {address}, suppressed ({blocked})"
                column = contacts.c.email if on == "email" else contacts.c.phone
                status = c.execute(
                    select(contacts.c[f"{on}_status"]).where(column == address)
                ).scalar_one()
                assert status == "subscribed", f"{on} to {address}, whose status is {status}"

    @invariant()
    def one_stage_per_contact(self) -> None:
        with self.ws.engine.connect() as c:
            stages: dict[int, int] = dict(
                c.execute(
                    select(contact_scores.c.contact_id, func.count()).group_by(
                        contact_scores.c.contact_id
                    )
                ).all()
            )
            people = c.execute(select(contacts.c.id, contacts.c.erased_at)).all()
        for contact_id, erased_at in people:
            if erased_at is not None:
                assert contact_id not in stages, f"erased contact {contact_id} keeps a stage"
            elif contact_id in self.scored:
                assert stages.get(contact_id) == 1, f"contact {contact_id} has no single stage"


@pytest.fixture
def smtp_handler(smtp: RecordingHandler, monkeypatch: pytest.MonkeyPatch) -> RecordingHandler:
    """The real SMTP server on loopback; the machine's workspaces are SQLite ones."""
    monkeypatch.delenv(ENV_DATABASE_URL, raising=False)
    return smtp


def test_no_message_reaches_who_said_no(smtp_handler: RecordingHandler) -> None:
    Compliance.smtp = smtp_handler
    run_state_machine_as_test(
        Compliance,
        settings=settings(
            max_examples=25,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
