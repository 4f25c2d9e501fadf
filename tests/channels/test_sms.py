"""SMS through the SMSFactor API, against a stand-in on loopback that speaks its
documented request and answer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from tests.channels.conftest import sms_to
from tests.channels.smsfactor_stand_in import Scripted, SmsFactorStandIn
from tests.channels.smtp_server import free_port
from winback.channels import (
    ChannelError,
    PermanentFailure,
    Sent,
    SmsFactorSender,
    TemporaryFailure,
    Throttled,
    UnknownOutcome,
    sender_for,
)
from winback.domain import Channel, EventType
from winback.errors import ConfigError
from winback.workspace import Workspace


@pytest.fixture
def sender(smsfactor: SmsFactorStandIn) -> Iterator[SmsFactorSender]:
    sms = SmsFactorSender(
        api_url=smsfactor.url,
        api_token="test-token-123",
        sender="EOLE",
        stop_mention="STOP au 36111",
        timeout=5,
    )
    yield sms
    sms.close()


def test_the_request_follows_the_documented_format(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    result = sender.send(sms_to("+33612345678", outbox_id=42))

    assert result == Sent(provider_id="14672468", parts=1)
    [request] = smsfactor.state.requests
    assert request == {
        "sms": {
            "message": {
                "text": "Boutique Eole : -20% sur tout ce week-end avec le code RETOUR20\n"
                "STOP au 36111",
                "pushtype": "marketing",
                "sender": "EOLE",
                "unicode": 0,
            },
            "recipients": {"gsm": [{"gsmsmsid": "42", "value": "33612345678"}]},
        }
    }


def test_accents_outside_gsm7_switch_to_unicode_and_count_parts(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    # "Ê" is not in the GSM-7 tables ("Ç", "À" and "é" are): the whole text goes as UCS-2.
    body = "Ça fait longtemps ! Êtes-vous prête pour une surprise ? À découvrir ici."
    result = sender.send(sms_to("+33612345678", body_text=body))

    text = smsfactor.state.requests[0]["sms"]["message"]["text"]
    assert smsfactor.state.requests[0]["sms"]["message"]["unicode"] == 1
    # 72 characters of body, a line break and 13 of mention: 86 UCS-2 units, 2 parts.
    assert len(text) == 86
    assert result == Sent(provider_id="14672468", parts=2)


def test_one_connection_for_many_sms(sender: SmsFactorSender, smsfactor: SmsFactorStandIn) -> None:
    results = [sender.send(sms_to(f"+336000000{n:02d}", n)) for n in range(20)]
    assert all(isinstance(result, Sent) for result in results)
    assert len(smsfactor.state.requests) == 20
    assert smsfactor.state.connections == 1


def test_an_invalid_number_is_a_hard_bounce_and_stop_an_unsubscribe(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    smsfactor.state.invalid_numbers.add("33699999999")
    smsfactor.state.blacklisted_numbers.add("33611111111")

    invalid = sender.send(sms_to("+33699999999"))
    stopped = sender.send(sms_to("+33611111111"))
    malformed = sender.send(sms_to("06 12 34 56 78"))

    assert isinstance(invalid, PermanentFailure) and invalid.event == EventType.BOUNCE_HARD
    assert isinstance(stopped, PermanentFailure) and stopped.event == EventType.UNSUBSCRIBE
    assert isinstance(malformed, PermanentFailure) and "E.164" in malformed.reason
    assert len(smsfactor.state.requests) == 2  # the malformed number never left


def test_throttling_and_server_errors_are_temporary(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    smsfactor.state.script.extend(
        [
            Scripted(429, {"status": -99, "message": "Too many requests"}, {"Retry-After": "30"}),
            Scripted(503, {"status": -99, "message": "Maintenance"}),
        ]
    )
    throttled = sender.send(sms_to("+33612345678"))
    down = sender.send(sms_to("+33612345678"))
    then = sender.send(sms_to("+33612345678"))

    assert throttled == TemporaryFailure(
        "SMSFactor answered HTTP 429", code="429", retry_after=timedelta(seconds=30)
    )
    assert isinstance(down, TemporaryFailure) and down.code == "503"
    assert isinstance(then, Sent)


def test_moderation_is_sent_and_other_errors_are_permanent(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    smsfactor.state.script.extend(
        [
            Scripted(body={"status": -8, "message": "Campaign sent to moderation", "ticket": 7}),
            Scripted(body={"status": -7, "message": "Data error"}),
        ]
    )
    assert sender.send(sms_to("+33612345678")) == Sent(provider_id="7", parts=1)
    assert sender.send(sms_to("+33612345678")) == PermanentFailure(
        "SMSFactor: Data error", code="-7"
    )


def test_account_problems_stop_the_channel(smsfactor: SmsFactorStandIn) -> None:
    wrong_token = SmsFactorSender(
        api_url=smsfactor.url, api_token="nope", sender="EOLE", stop_mention="STOP"
    )
    with pytest.raises(ChannelError, match=r"API token.*sms\] api_token"):
        wrong_token.send(sms_to("+33612345678"))
    wrong_token.close()

    smsfactor.state.script.append(Scripted(body={"status": -3, "message": "Not enough credits"}))
    broke = SmsFactorSender(
        api_url=smsfactor.url, api_token="test-token-123", sender="EOLE", stop_mention="STOP"
    )
    with pytest.raises(ChannelError, match=r"Not enough credits.*buy credits"):
        broke.send(sms_to("+33612345678"))
    broke.close()

    with pytest.raises(ChannelError, match=r"sms.api_token is empty"):
        SmsFactorSender(api_url=smsfactor.url, api_token=None, sender="EOLE", stop_mention="")


def test_an_unreachable_provider_and_a_lost_answer(
    sender: SmsFactorSender, smsfactor: SmsFactorStandIn
) -> None:
    smsfactor.state.script.append(Scripted(hang_up=True))
    lost = sender.send(sms_to("+33612345678"))
    assert isinstance(lost, UnknownOutcome) and "may have gone out" in lost.reason
    assert len(smsfactor.state.requests) == 1

    nowhere = SmsFactorSender(
        api_url=f"http://127.0.0.1:{free_port()}", api_token="t", sender="EOLE", stop_mention=""
    )
    with pytest.raises(ChannelError, match=r"cannot reach SMSFactor.*\[sms\] api_url"):
        nowhere.send(sms_to("+33612345678"))
    nowhere.close()


def test_sender_for_picks_smsfactor_from_the_config(
    smsfactor: SmsFactorStandIn, configure: Callable[[str], Workspace]
) -> None:
    workspace = configure(
        f'[sms]\nprovider = "smsfactor"\nsender = "EOLE2026"\napi_url = "{smsfactor.url}"\n'
        'api_token = "test-token-123"\nstop_mention = "STOP SMS au 36111"\nrate_per_second = 5\n'
    )
    sender = sender_for(workspace, Channel.SMS)
    try:
        assert isinstance(sender, Throttled) and sender.limiter.rate == 5
        assert isinstance(sender.send(sms_to("+33612345678")), Sent)
    finally:
        sender.close()
    message = smsfactor.state.requests[0]["sms"]["message"]
    assert message["sender"] == "EOLE2026"
    assert message["text"].endswith("\nSTOP SMS au 36111")


@pytest.mark.parametrize(
    ("sender_name", "problem"),
    [
        ("MA BOUTIQUE", "3 to 11 letters or digits"),
        ("BOUTIQUEEOLE", "3 to 11 letters or digits"),
        ("Éole", "3 to 11 letters or digits"),
        ("0612345678", "at least one letter"),
    ],
)
def test_the_sender_name_is_checked_when_the_config_is_read(
    configure: Callable[[str], Workspace], sender_name: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=rf"sms\.sender: .*{problem}"):
        configure(f'[sms]\nsender = "{sender_name}"\n')
