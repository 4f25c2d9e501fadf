"""Machine opens: an email open that no person made.

Apple Mail Privacy Protection (MPP) fetches every image of a message through Apple's
proxy as soon as the message reaches the device, whether or not anyone reads it; some
security gateways do the same. Gmail's and Yahoo's image proxies fetch the pixel on the
person's behalf and hide who and where they are (Gmail also prefetches on arrival), so an
open through them cannot be told from a machine's. Such an open proves nothing about the
person, so it never counts as an interaction. The rule, in order:

1. the event carries a flag (``machine_open``): the flag decides (ESPs that detect proxy
   fetches say so in their exports and webhooks);
2. no flag, and the user agent is one an image proxy sends (Apple's, Google's, Yahoo's:
   see :data:`PROXY_USER_AGENTS`): a machine open;
3. no flag, and the open came within ``scoring.machine_open_seconds`` of the delivery of
   the same message: a machine open (no person opens a message that fast; a prefetch does).

Otherwise the open is human. :func:`is_machine_open` is the rule on plain values (the
tracking server's single hit, the tick's reactions); :func:`machine_open_sql` is the same
rule as SQL over the ``events`` table, for the bulk scoring. The user-agent patterns are
SQL ``LIKE`` patterns, matched without regard to case, so both share one definition; a
property test checks that both give the same answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, literal, not_, or_, select

from winback.domain import EventType
from winback.scoring.sql_functions import ci_like, seconds_between, shifted

# What the Apple proxy sends when it prefetches images: a bare ``Mozilla/5.0``, or the
# Apple Mail WebKit string of a Mac, iPhone or iPad *without* the ``Version/… Safari/…``
# tokens that a browser adds (a person clicking through to Safari is a browser hit).
# Google's and Yahoo's proxies name themselves.
PROXY_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0",
    "Mozilla/5.0 (Macintosh; % Mac OS X %) AppleWebKit/% (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; % like Mac OS X) AppleWebKit/% (KHTML, like Gecko) Mobile/%",
    "Mozilla/5.0 (iPad; % like Mac OS X) AppleWebKit/% (KHTML, like Gecko) Mobile/%",
    "%GoogleImageProxy%",
    "%YahooMailProxy%",
)
# A user agent matching a pattern above is still a browser when it also matches one of
# these (the ``Mobile/%`` patterns would otherwise swallow mobile Safari).
BROWSER_USER_AGENTS: tuple[str, ...] = ("%Safari/%",)


@lru_cache(maxsize=64)
def _like_regex(pattern: str) -> re.Pattern[str]:
    """A SQL LIKE pattern (``%`` any run, ``_`` one character) as a case-insensitive regex."""
    parts = (".*" if char == "%" else "." if char == "_" else re.escape(char) for char in pattern)
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


# Remembered per agent: the patterns cost tens of microseconds a call, and a few hundred
# agents make nearly every open the tracking server and the journey engine judge.
@lru_cache(maxsize=4096)
def is_proxy_user_agent(user_agent: str | None) -> bool:
    """True when ``user_agent`` is what an image proxy (Apple's, Google's, Yahoo's) sends.

    >>> is_proxy_user_agent("Mozilla/5.0")
    True
    """
    if not user_agent:
        return False
    if any(_like_regex(p).fullmatch(user_agent) for p in BROWSER_USER_AGENTS):
        return False
    return any(_like_regex(p).fullmatch(user_agent) for p in PROXY_USER_AGENTS)


def is_machine_open(
    *,
    flag: bool | None,
    user_agent: str | None,
    opened_at: datetime,
    delivered_at: datetime | None,
    machine_open_seconds: int,
) -> bool:
    """Whether an open is a machine open (see the module docstring for the rule).

    ``delivered_at`` is when the same message was delivered to the same contact (None
    when unknown); both times must be comparable (both aware, or both naive UTC).
    """
    if flag is not None:
        return flag
    if is_proxy_user_agent(user_agent):
        return True
    if delivered_at is None:
        return False
    delay = (opened_at - delivered_at).total_seconds()
    return 0 <= delay <= machine_open_seconds


def proxy_user_agent_sql(user_agent: ColumnElement[str]) -> ColumnElement[bool]:
    """The user-agent part of the rule as a SQL condition on a column."""
    if not PROXY_USER_AGENTS:
        return false()
    return and_(
        user_agent.is_not(None),
        or_(*(ci_like(user_agent, pattern) for pattern in PROXY_USER_AGENTS)),
        not_(or_(*(ci_like(user_agent, pattern) for pattern in BROWSER_USER_AGENTS))),
    )


def machine_open_sql(opened: Any, delivered: Any, machine_open_seconds: int) -> ColumnElement[bool]:
    """The whole rule as a SQL condition on ``opened``, an alias of the ``events`` table
    whose row is an open: its flag, else its user agent, else a delivery of the same
    message to the same contact at most ``machine_open_seconds`` before it, looked up in
    ``delivered`` (another alias of ``events``)."""
    e = opened.c
    delivered_just_before = exists(
        select(literal(1))
        .select_from(delivered)
        .where(*delivered_before_open(delivered, opened, machine_open_seconds, sought="delivered"))
    )
    return or_(
        e.machine_open.is_(True),
        and_(
            e.machine_open.is_(None),
            or_(
                proxy_user_agent_sql(e.user_agent),
                and_(e.message_id.is_not(None), delivered_just_before),
            ),
        ),
    )


def delivered_before_open(
    delivered: Any, opened: Any, seconds: int, *, sought: str
) -> tuple[ColumnElement[bool], ...]:
    """SQL for rule 3, on two aliases of ``events``: ``delivered`` is the delivery of the
    message that ``opened`` opens, at most ``seconds`` before it. ``sought``
    (``"delivered"`` or ``"opened"``) is the alias the query looks up: the time range is
    written on its column, so the database seeks the (contact, time) index, where a few
    seconds hold almost no event, instead of visiting every event of the message through
    the message-id index."""
    if sought == "delivered":
        window = delivered.c.occurred_at.between(
            shifted(opened.c.occurred_at, -seconds), opened.c.occurred_at
        )
    else:
        window = opened.c.occurred_at.between(
            delivered.c.occurred_at, shifted(delivered.c.occurred_at, seconds)
        )
    return (
        delivered.c.contact_id == opened.c.contact_id,
        window,
        delivered.c.message_id == opened.c.message_id,
        delivered.c.type == EventType.DELIVERED.value,
        seconds_between(delivered.c.occurred_at, opened.c.occurred_at).between(0, seconds),
    )
