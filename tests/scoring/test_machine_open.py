"""The machine-open rule (Apple Mail Privacy Protection, Gmail's and Yahoo's image proxies)
with real user-agent strings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from winback.scoring import is_machine_open, is_proxy_user_agent

PROXIES = [
    "Mozilla/5.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148",
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
]
PEOPLE = [
    # Safari on a Mac and on an iPhone: a person who followed a link.
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Thunderbird/125.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17425; Pro)",
    "",
    None,
]
T0 = datetime(2024, 5, 1, 9, 0, 0)


@pytest.mark.parametrize("user_agent", PROXIES)
def test_image_proxy_user_agents_are_machine_opens(user_agent: str) -> None:
    assert is_proxy_user_agent(user_agent)
    assert is_machine_open(
        flag=None, user_agent=user_agent, opened_at=T0, delivered_at=None, machine_open_seconds=2
    )


@pytest.mark.parametrize("user_agent", PEOPLE)
def test_browsers_and_other_mail_clients_are_people(user_agent: str | None) -> None:
    assert not is_proxy_user_agent(user_agent)
    assert not is_machine_open(
        flag=None, user_agent=user_agent, opened_at=T0, delivered_at=None, machine_open_seconds=2
    )


def test_the_flag_wins_over_the_user_agent() -> None:
    assert not is_machine_open(
        flag=False, user_agent="Mozilla/5.0", opened_at=T0, delivered_at=T0, machine_open_seconds=2
    )
    assert is_machine_open(
        flag=True, user_agent=PEOPLE[2], opened_at=T0, delivered_at=None, machine_open_seconds=2
    )


@pytest.mark.parametrize(
    ("delay", "seconds", "machine"),
    [(0, 2, True), (2, 2, True), (3, 2, False), (-1, 2, False), (9, 10, True), (11, 10, False)],
)
def test_an_open_within_the_configured_seconds_of_delivery_is_a_machine_open(
    delay: int, seconds: int, machine: bool
) -> None:
    assert (
        is_machine_open(
            flag=None,
            user_agent=PEOPLE[4],
            opened_at=T0 + timedelta(seconds=delay),
            delivered_at=T0,
            machine_open_seconds=seconds,
        )
        is machine
    )
