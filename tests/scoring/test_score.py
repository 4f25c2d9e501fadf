"""Hand-built bases with known answers: given this history and this policy, on this
date, this contact is in this stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from tests.builders import add_contact, add_event, day
from tests.scoring.conftest import run_score, scores_of, stage_of
from winback.compliance.refusals import apply_refusals
from winback.store.schema import audit, contact_scores, contacts, stage_history
from winback.workspace import ENV_DATABASE_URL, Workspace

NOW = day(2025, 6, 1, 0)


def ago(days: int, hour: int = 12) -> datetime:
    return NOW - timedelta(days=days) + timedelta(hours=hour)


@pytest.mark.parametrize(
    ("days", "stage"),
    [
        (119, "active"),
        (120, "at_risk"),
        (179, "at_risk"),
        (180, "dormant"),
        (364, "dormant"),
        (365, "lost"),
    ],
)
def test_ecommerce_thresholds_are_inclusive(workspace: Workspace, days: int, stage: str) -> None:
    with workspace.engine.begin() as c:
        alice = add_contact(c, email="alice@example.com", created_at=ago(900))
        add_event(c, alice, "purchase", ago(days, hour=23), amount=40.0)
        # Sends and deliveries are not interactions, and an Apple proxy open is a machine.
        add_event(c, alice, "sent", ago(2), message_id="m1")
        add_event(c, alice, "delivered", ago(2), message_id="m1")
        add_event(c, alice, "open", ago(2), message_id="m1", user_agent="Mozilla/5.0")
    run_score(workspace, NOW)
    scores = scores_of(workspace, alice)
    assert scores["stage"] == stage
    assert scores["scores"]["clock_days"] == days
    assert scores["scores"]["days_inactive"] == days
    assert scores["stage_history"] == [{"from": None, "to": stage, "on": "2025-06-01"}]


def test_an_open_seconds_after_delivery_is_a_machine_open(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        bob = add_contact(c, email="bob@example.com", created_at=ago(900))
        add_event(c, bob, "purchase", ago(200), amount=10.0)
        delivered = ago(3)
        add_event(c, bob, "delivered", delivered, message_id="m7")
        add_event(c, bob, "open", delivered + timedelta(seconds=1), message_id="m7")
        carol = add_contact(c, email="carol@example.com", created_at=ago(900))
        add_event(c, carol, "purchase", ago(200), amount=10.0)
        add_event(c, carol, "delivered", delivered, message_id="m8")
        add_event(c, carol, "open", delivered + timedelta(minutes=20), message_id="m8")
    run_score(workspace, NOW)
    assert scores_of(workspace, bob)["scores"]["last_interaction_at"] == ago(200).isoformat()
    carol_scores = scores_of(workspace, carol)["scores"]
    assert carol_scores["last_email_at"] == (delivered + timedelta(minutes=20)).isoformat()
    # For the ecommerce clock only purchases count: both are dormant all the same.
    assert stage_of(workspace, bob) == stage_of(workspace, carol) == "dormant"


def test_with_zero_seconds_an_open_at_the_delivery_instant_is_a_machine_open(
    profile_workspace: Callable[..., Workspace],
) -> None:
    ws = profile_workspace("ecommerce", machine_open_seconds=0)
    with ws.engine.begin() as c:
        bob = add_contact(c, email="bob@example.com", created_at=ago(900))
        add_event(c, bob, "purchase", ago(200), amount=10.0)
        delivered = ago(3)
        add_event(c, bob, "delivered", delivered, message_id="m7")
        add_event(c, bob, "open", delivered, message_id="m7")
    run_score(ws, NOW)
    assert scores_of(ws, bob)["scores"]["last_interaction_at"] == ago(200).isoformat()


def test_an_open_exactly_the_window_after_its_delivery_is_a_machine_open(
    profile_workspace: Callable[..., Workspace],
) -> None:
    """The window is closed at both ends, in the bulk score as in the tracking server's
    rule (SQLite's julianday difference made two seconds 2.00003, a human open)."""
    ws = profile_workspace("ecommerce", machine_open_seconds=2)
    with ws.engine.begin() as c:
        bob = add_contact(c, email="bob@example.com", created_at=ago(900))
        add_event(c, bob, "purchase", ago(200), amount=10.0)
        # At 10:00 on that day, julianday's difference for two seconds is over 2.
        delivered = ago(3, hour=10)
        add_event(c, bob, "delivered", delivered, message_id="m7")
        add_event(c, bob, "open", delivered + timedelta(seconds=2), message_id="m7")
    run_score(ws, NOW)
    assert scores_of(ws, bob)["scores"]["last_interaction_at"] == ago(200).isoformat()


def test_every_profile(profile_workspace: Callable[..., Workspace]) -> None:
    expected = {}
    for profile in ("ecommerce", "retail", "travel", "subscription", "newsletter"):
        ws = profile_workspace(profile)
        with ws.engine.begin() as c:
            customer = add_contact(c, email="c@example.com", created_at=ago(1000))
            add_event(c, customer, "purchase", ago(300), amount=80.0)
            add_event(c, customer, "click", ago(130))
            add_event(c, customer, "login", ago(45))
            add_event(c, customer, "open", ago(5), machine_open=True)
            reader = add_contact(c, email="r@example.com", created_at=ago(1000))
            add_event(c, reader, "open", ago(100), machine_open=False)
        run_score(ws, NOW)
        expected[profile] = (stage_of(ws, customer), stage_of(ws, reader))
    assert expected == {
        # purchase 300 days ago: lost from 365, dormant from 180
        "ecommerce": ("dormant", "prospect"),
        # the click (130 days) is retail activity: at risk from 120
        "retail": ("at_risk", "prospect"),
        # travel: at risk from 270
        "travel": ("at_risk", "prospect"),
        # the login (45 days) is subscription activity: at risk from 30; the reader's
        # open (100 days) puts the prospect past dormant (60)
        "subscription": ("at_risk", "dormant"),
        # newsletter: the click (130 days) is activity, at risk from 90; so is the reader
        "newsletter": ("at_risk", "at_risk"),
    }


def test_a_contact_active_by_sms_only(profile_workspace: Callable[..., Workspace]) -> None:
    ws = profile_workspace("newsletter")
    with ws.engine.begin() as c:
        sam = add_contact(c, phone="+33612345678", created_at=ago(800))
        add_event(c, sam, "purchase", ago(500), amount=20.0)
        add_event(c, sam, "sent", ago(20), channel="email")
        add_event(c, sam, "reply", ago(4), channel="sms")
    run_score(ws, NOW)
    scores = scores_of(ws, sam)
    assert scores["stage"] == "active"
    assert scores["scores"]["last_sms_at"] == ago(4).isoformat()
    assert scores["scores"]["last_email_at"] is None
    assert scores["scores"]["days_inactive"] == 4


def test_a_prospect_is_timed_from_creation_or_last_interaction(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        new = add_contact(c, email="new@example.com", created_at=ago(30))
        old = add_contact(c, email="old@example.com", created_at=ago(400))
        clicker = add_contact(c, email="clicker@example.com", created_at=ago(400))
        add_event(c, clicker, "click", ago(200))
    run_score(workspace, NOW)
    assert (stage_of(workspace, new), stage_of(workspace, old), stage_of(workspace, clicker)) == (
        "prospect",
        "lost",
        "dormant",
    )
    assert scores_of(workspace, new)["scores"]["purchases"] == 0


def test_a_dormant_subscriber_is_protected(profile_workspace: Callable[..., Workspace]) -> None:
    ws = profile_workspace("subscription")
    with ws.engine.begin() as c:
        paying = add_contact(
            c, email="p@example.com", created_at=ago(900), subscription_active=True
        )
        add_event(c, paying, "purchase", ago(400), amount=9.99)
        add_event(c, paying, "login", ago(70))
        lapsed = add_contact(c, email="l@example.com", created_at=ago(900))
        add_event(c, lapsed, "purchase", ago(400), amount=9.99)
        add_event(c, lapsed, "login", ago(70))
    run_score(ws, NOW)
    assert scores_of(ws, paying)["stage"] == "dormant"
    assert scores_of(ws, paying)["scores"]["dormant_subscriber"] is True
    assert scores_of(ws, lapsed)["scores"]["dormant_subscriber"] is False


def test_lost_by_journey_until_the_contact_interacts_again(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as c:
        dora = add_contact(
            c,
            email="dora@example.com",
            created_at=ago(900),
            lost_by_journey_at=ago(10).replace(tzinfo=None),
        )
        add_event(c, dora, "purchase", ago(30), amount=50.0)
    run_score(ws, NOW)
    assert stage_of(ws, dora) == "lost"
    with ws.engine.begin() as c:
        add_event(c, dora, "click", ago(1))
    result = run_score(ws, NOW + timedelta(days=1))
    assert result.mode == "incremental"
    history = scores_of(ws, dora)["stage_history"]
    assert [(h["from"], h["to"], h["on"]) for h in history] == [
        (None, "lost", "2025-06-01"),
        ("lost", "active", "2025-06-02"),
    ]


@pytest.mark.parametrize(
    ("email", "sms", "stage"),
    [
        ("unsubscribed", "none", "unsubscribed"),
        ("complained", "subscribed", "active"),
        ("bounced", "unsubscribed", "unsubscribed"),
        ("bounced", "complained", "complained"),
        ("bounced", "none", "bounced"),
        ("none", "none", "active"),
    ],
)
def test_consent_stages(sqlite_workspace: Workspace, email: str, sms: str, stage: str) -> None:
    with sqlite_workspace.engine.begin() as c:
        eve = add_contact(
            c,
            email="eve@example.com",
            phone="+33600000001",
            created_at=ago(900),
            email_status=email,
            sms_status=sms,
        )
        add_event(c, eve, "purchase", ago(10), amount=5.0)
    run_score(sqlite_workspace, NOW)
    assert stage_of(sqlite_workspace, eve) == stage


def test_days_are_counted_in_the_workspace_time_zone(
    profile_workspace: Callable[..., Workspace],
) -> None:
    ws = profile_workspace("ecommerce", timezone="Pacific/Auckland")
    with ws.engine.begin() as c:
        kim = add_contact(c, email="kim@example.com", created_at=day(2023, 1, 1))
        # 2024-12-02 11:30 UTC is 2024-12-03 00:30 in Auckland (UTC+13 in summer).
        add_event(c, kim, "purchase", day(2024, 12, 2, 11, 30), amount=5.0)
    # 2025-05-31 00:00 in Auckland (UTC+12 in winter): 179 local days later.
    run_score(ws, datetime.fromisoformat("2025-05-31T00:00:00+12:00"))
    assert scores_of(ws, kim)["scores"]["clock_days"] == 179
    assert stage_of(ws, kim) == "at_risk"
    run_score(ws, datetime.fromisoformat("2025-06-01T00:00:00+12:00"))
    assert stage_of(ws, kim) == "dormant"


def test_rescoring_rewrites_only_contacts_with_news_or_a_crossed_threshold(
    workspace: Workspace,
) -> None:
    with workspace.engine.begin() as c:
        steady = add_contact(c, email="steady@example.com", created_at=ago(900))
        add_event(c, steady, "purchase", ago(10), amount=30.0)
        edge = add_contact(c, email="edge@example.com", created_at=ago(900))
        add_event(c, edge, "purchase", ago(179), amount=30.0)
        buyer = add_contact(c, email="buyer@example.com", created_at=ago(900))
        add_event(c, buyer, "purchase", ago(300), amount=30.0)
    first = run_score(workspace, NOW)
    assert (first.mode, first.rewritten) == ("full", 3)
    with workspace.engine.begin() as c:
        add_event(c, buyer, "click", ago(0))
    second = run_score(workspace, NOW + timedelta(days=1))
    assert second.mode == "incremental"
    assert second.new_events == 1
    with workspace.engine.connect() as c:
        rows = dict(
            c.execute(select(contact_scores.c.contact_id, contact_scores.c.scored_at)).all()
        )
        entered = c.execute(
            select(
                stage_history.c.contact_id, stage_history.c.to_stage, stage_history.c.changed_on
            ).where(stage_history.c.changed_on > NOW.date())
        ).all()
        audited = c.execute(
            select(func.count()).where(audit.c.action == "stage_change")
        ).scalar_one()
    # steady (no news, same quintiles) kept its row; edge crossed 180; buyer clicked.
    assert rows[steady].date() == NOW.date()
    assert rows[edge].date() == rows[buyer].date() == (NOW + timedelta(days=1)).date()
    assert [(cid, stage) for cid, stage, _ in entered] == [(edge, "dormant")]
    assert audited == 4
    assert scores_of(workspace, buyer)["scores"]["days_inactive"] == 1
    full = run_score(workspace, NOW + timedelta(days=1), full=True)
    assert full.stages == second.stages


def test_erased_contacts_are_not_scored(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as c:
        gone = add_contact(c, email="gone@example.com", created_at=ago(10))
    run_score(ws, NOW)
    with ws.engine.begin() as c:
        c.execute(
            contacts.update()
            .where(contacts.c.id == gone)
            .values(erased_at=NOW.replace(tzinfo=None), email=None)
        )
    result = run_score(ws, NOW)
    assert result.contacts == 0
    assert stage_of(ws, gone) is None


def test_rescoring_restages_a_contact_whose_record_changed(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        ann = add_contact(c, email="ann@example.com", created_at=ago(900))
        add_event(c, ann, "purchase", ago(10), amount=30.0)
        ben = add_contact(c, email="ben@example.com", created_at=ago(900))
        add_event(c, ben, "purchase", ago(200), amount=30.0)
        quiet = add_contact(c, email="quiet@example.com", created_at=ago(900))
        add_event(c, quiet, "purchase", ago(20), amount=30.0)
    run_score(workspace, NOW)
    # No event: Ann unsubscribes, a journey lets Ben go.
    with workspace.engine.begin() as c:
        c.execute(contacts.update().where(contacts.c.id == ann).values(email_status="unsubscribed"))
        c.execute(
            contacts.update()
            .where(contacts.c.id == ben)
            .values(lost_by_journey_at=ago(1).replace(tzinfo=None))
        )
    result = run_score(workspace, NOW + timedelta(days=1))
    assert (result.mode, result.rewritten) == ("incremental", 2)
    assert (stage_of(workspace, ann), stage_of(workspace, ben)) == ("unsubscribed", "lost")
    assert stage_of(workspace, quiet) == "active"


def test_rfm_breakpoints_are_kept_until_a_full_score(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as c:
        buyers = []
        for n in range(1, 6):
            buyer = add_contact(c, email=f"b{n}@example.com", created_at=ago(900))
            add_event(c, buyer, "purchase", ago(10), amount=10.0 * n)
            buyers.append(buyer)
    run_score(ws, NOW)
    assert [scores_of(ws, b)["scores"]["monetary_score"] for b in buyers] == [1, 2, 3, 4, 5]
    with ws.engine.begin() as c:
        big = add_contact(c, email="big@example.com", created_at=ago(900))
        add_event(c, big, "purchase", ago(0), amount=1000.0)
    run_score(ws, NOW + timedelta(days=1))
    # The new customer is placed against the breakpoints of the full score; the others
    # keep their scores.
    assert scores_of(ws, big)["scores"]["monetary_score"] == 5
    assert [scores_of(ws, b)["scores"]["monetary_score"] for b in buyers] == [1, 2, 3, 4, 5]
    run_score(ws, NOW + timedelta(days=1), full=True)
    # Over six customers the breakpoints move up to the spends 20, 30, 40 and 50.
    assert [scores_of(ws, b)["scores"]["monetary_score"] for b in buyers] == [1, 1, 2, 3, 4]


def test_rescoring_finds_contacts_added_or_changed_without_events(workspace: Workspace) -> None:
    with workspace.engine.begin() as c:
        ann = add_contact(c, email="ann@example.com", created_at=ago(900))
        add_event(c, ann, "purchase", ago(10), amount=30.0)
        same = add_contact(c, email="same@example.com", created_at=ago(900))
        add_event(c, same, "purchase", ago(20), amount=30.0)
    run_score(workspace, NOW)
    with workspace.engine.begin() as c:
        new = add_contact(c, email="new@example.com", created_at=ago(5))
        # Ann's unsubscribe goes through the one refusal path, which writes no event.
        apply_refusals(
            c,
            workspace,
            [
                {
                    "contact_id": ann,
                    "type": "unsubscribe",
                    "channel": "email",
                    "occurred_at": ago(1).replace(tzinfo=None),
                }
            ],
            now=NOW,
            actor="test",
        )
        # A write that changes nothing the stages read does not make a rewrite.
        c.execute(
            contacts.update()
            .where(contacts.c.id == same)
            .values(email_status="subscribed", country="FR")
        )
    result = run_score(workspace, NOW + timedelta(days=1))
    assert (result.mode, result.rewritten, result.contacts) == ("incremental", 2, 3)
    assert (stage_of(workspace, ann), stage_of(workspace, new)) == ("unsubscribed", "prospect")
    assert scores_of(workspace, same)["scores"]["clock_days"] == 20
    again = run_score(workspace, NOW + timedelta(days=1))
    assert (again.mode, again.rewritten) == ("incremental", 0)


def test_without_the_change_triggers_the_rescore_is_full(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    with ws.engine.begin() as c:
        add_contact(c, email="ann@example.com", created_at=ago(900))
    run_score(ws, NOW)
    with ws.engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER score_changes_update")
    result = run_score(ws, NOW + timedelta(days=1))
    assert result.mode == "full"
    assert "score_changes_update" in result.reason


@pytest.mark.pg
def test_a_change_noted_while_a_score_runs_waits_for_the_next_one(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL lets another transaction write contacts while a score runs.
    monkeypatch.setenv(ENV_DATABASE_URL, pg_url)
    ws = Workspace.init(tmp_path / "ws", "ecommerce")
    with ws.engine.begin() as c:
        ann = add_contact(c, email="ann@example.com", created_at=ago(900))
        add_event(c, ann, "purchase", ago(10), amount=30.0)
    run_score(ws, NOW)
    unsubscribed: list[int] = []

    def unsubscribe_meanwhile(_c: object, _cursor: object, statement: str, *_: object) -> None:
        # Ann unsubscribes, from another connection, once the score has read the contacts.
        if statement.startswith("INSERT INTO stage_history") and not unsubscribed:
            unsubscribed.append(ann)
            with ws.engine.begin() as other:
                other.execute(
                    contacts.update()
                    .where(contacts.c.id == ann)
                    .values(email_status="unsubscribed")
                )

    event.listen(ws.engine, "before_cursor_execute", unsubscribe_meanwhile)
    run_score(ws, NOW + timedelta(days=1))
    event.remove(ws.engine, "before_cursor_execute", unsubscribe_meanwhile)
    assert unsubscribed and stage_of(ws, ann) == "active"
    run_score(ws, NOW + timedelta(days=1))
    assert stage_of(ws, ann) == "unsubscribed"
    ws.close()


@pytest.mark.parametrize(("profile", "stage"), [("ecommerce", "at_risk"), ("retail", "active")])
def test_a_late_first_purchase_times_a_prospect_by_the_profiles_activity(
    profile_workspace: Callable[..., Workspace], profile: str, stage: str
) -> None:
    ws = profile_workspace(profile)
    with ws.engine.begin() as c:
        pia = add_contact(c, email="pia@example.com", created_at=ago(900))
        add_event(c, pia, "click", ago(10))
        bob = add_contact(c, email="bob@example.com", created_at=ago(900))
        add_event(c, bob, "purchase", ago(30), amount=20.0)
    run_score(ws, NOW)
    assert stage_of(ws, pia) == "prospect"
    # A purchase made 150 days ago arrives in a later import: retail counts the click of
    # 10 days ago as customer activity, e-commerce only the purchase.
    with ws.engine.begin() as c:
        add_event(c, pia, "purchase", ago(150), amount=20.0)
    result = run_score(ws, NOW)
    assert result.mode == "incremental"
    assert stage_of(ws, pia) == stage
