"""Soft bounces and STOP replies, imported as an ESP or SMS provider exports them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from tests.builders import add_contact, day
from tests.compliance.conftest import audit_actions, contact, suppression_reasons, write
from winback.compliance.refusals import is_stop_reply
from winback.ingest.events import import_events
from winback.store.schema import events
from winback.workspace import Workspace

NOW = day(2025, 6, 30)


def _alice(workspace: Workspace) -> int:
    with workspace.engine.begin() as connection:
        return add_contact(
            connection, email="alice@example.com", phone="+33612345678", created_at=day(2024, 1, 1)
        )


def test_three_soft_bounces_within_30_days_suppress_the_address(
    workspace: Workspace, tmp_path: Path
) -> None:
    alice = _alice(workspace)
    first = write(
        tmp_path,
        "bounces-may.csv",
        """
        email,type,date
        alice@example.com,bounce_soft,2025-05-01
        alice@example.com,bounce_soft,2025-06-05
        """,
    )
    import_events(workspace, first, now=NOW)
    assert contact(workspace, alice)["email_status"] == "subscribed"  # 35 days apart
    second = write(
        tmp_path,
        "bounces-june.csv",
        """
        email,type,date
        alice@example.com,bounce_soft,2025-06-20
        """,
    )
    import_events(workspace, second, now=NOW)
    assert contact(workspace, alice)["email_status"] == "subscribed"  # two in 30 days
    third = write(
        tmp_path,
        "bounces-late-june.csv",
        """
        email,type,date
        alice@example.com,bounce_soft,2025-06-29
        """,
    )
    import_events(workspace, third, now=NOW)
    alice_now = contact(workspace, alice)
    assert alice_now["email_status"] == "bounced"
    assert alice_now["sms_status"] == "subscribed"
    assert suppression_reasons(workspace) == {"email": ["bounce_soft"], "sms": []}
    assert ("status_change", "email bounced") in audit_actions(workspace, alice)
    assert ("suppress", "bounce_soft") in audit_actions(workspace, alice)


def test_the_soft_limit_and_window_come_from_the_config(
    workspace: Workspace, tmp_path: Path
) -> None:
    alice = _alice(workspace)
    config = workspace.path / "winback.toml"
    text = config.read_text(encoding="utf-8").replace("soft_limit = 3", "soft_limit = 2")
    config.write_text(text.replace('soft_window = "30d"', 'soft_window = "2d"'), encoding="utf-8")
    reopened = Workspace.open(workspace.path)
    try:
        events = write(
            tmp_path,
            "bounces.csv",
            """
            email,type,date
            alice@example.com,bounce_soft,2025-06-01
            alice@example.com,bounce_soft,2025-06-04
            """,
        )
        import_events(reopened, events, now=NOW)
        assert contact(reopened, alice)["email_status"] == "subscribed"
        events = write(
            tmp_path, "more.csv", "email,type,date\nalice@example.com,bounce_soft,2025-06-05\n"
        )
        import_events(reopened, events, now=NOW)
        assert contact(reopened, alice)["email_status"] == "bounced"
    finally:
        reopened.close()


def test_a_stop_reply_unsubscribes_the_sms_channel_only(
    workspace: Workspace, tmp_path: Path
) -> None:
    alice = _alice(workspace)
    with workspace.engine.begin() as connection:
        bob = add_contact(connection, phone="+33698765432", created_at=day(2024, 1, 1))
    replies = write(
        tmp_path,
        "sms-replies.csv",
        """
        phone,type,date,channel,text
        +33 6 12 34 56 78,reply,2025-06-10,sms,Stop.
        06 98 76 54 32,reply,2025-06-10,sms,Stop sending the old catalogue please
        """,
    )
    import_events(workspace, replies, now=NOW)
    assert contact(workspace, alice)["sms_status"] == "unsubscribed"
    assert contact(workspace, alice)["email_status"] == "subscribed"
    assert contact(workspace, bob)["sms_status"] == "subscribed"
    assert suppression_reasons(workspace) == {"email": [], "sms": ["unsubscribe"]}
    assert ("status_change", "sms unsubscribed") in audit_actions(workspace, alice)
    with workspace.engine.connect() as connection:
        texts = connection.execute(select(events.c.body).order_by(events.c.id)).scalars().all()
    assert texts == ["Stop.", "Stop sending the old catalogue please"]  # kept as written


@pytest.mark.parametrize(
    "text",
    ["STOP", "Stop", "stop.", " stop ", "ARRET", "ARRÊT", "Arrêt", "STOP SMS", "UNSUBSCRIBE"],
)
def test_usual_stop_words_are_recognised(text: str) -> None:
    assert is_stop_reply(text)


@pytest.mark.parametrize("text", ["", "Stop by the shop tomorrow?", "merci", "stopper", None])
def test_other_replies_are_not_stop(text: str | None) -> None:
    assert not is_stop_reply(text)
