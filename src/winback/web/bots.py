"""Bot clicks: a click that no person made.

Security gateways (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda...)
open every link of a message to scan its target, usually as soon as the message arrives;
chat and social apps fetch links for previews. Such a click proves nothing about the
person, so it is recorded with the ``bot`` flag and never counts as interest. The rule,
in order:

1. the user agent names a scanner, a preview fetcher or an HTTP library (see
   :data:`SCANNER_USER_AGENTS`): a bot click;
2. the click came within ``web.bot_click_seconds`` of the message going out: a bot click
   (a person needs longer to receive, open, read and click; a gateway scanning every link
   on arrival does not);
3. another link of the same message was clicked within :data:`BURST_SECONDS` before it:
   a bot click (a scanner walking the links; a person reads the page the first link opened).

Otherwise the click is human. Opens have their own rule, the machine-open rule of
:mod:`winback.scoring.machine_open`; this module does not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

# Substrings (case-insensitive) of the user agents that scanners and fetchers send.
SCANNER_USER_AGENTS: tuple[str, ...] = (
    "bot",  # Googlebot, bingbot, Slackbot, LinkedInBot, Twitterbot, Discordbot...
    "spider",
    "crawler",
    "preview",  # BingPreview: Outlook.com and Safe Links
    "headlesschrome",  # scanning sandboxes that detonate links in a headless browser
    "phantomjs",
    "facebookexternalhit",
    "whatsapp/",
    "barracuda",
    "mimecast",
    "proofpoint",
    "python-requests/",
    "python-urllib/",
    "aiohttp/",
    "go-http-client/",
    "curl/",
    "wget/",
    "java/",
    "okhttp/",
    "libwww-perl/",
)

# Two different links of one message clicked this close together: a scanner's walk.
BURST_SECONDS = 2


@lru_cache(maxsize=4096)  # a few hundred distinct agents make nearly every hit
def is_scanner_user_agent(user_agent: str | None) -> bool:
    """True when ``user_agent`` is a link scanner's, a preview fetcher's or an HTTP
    library's; an empty user agent is one too (every browser sends one).

    >>> is_scanner_user_agent("Mozilla/5.0 (compatible; bingbot/2.0)")
    True
    """
    if not user_agent or not user_agent.strip():
        return True
    lowered = user_agent.lower()
    return any(part in lowered for part in SCANNER_USER_AGENTS)


def is_bot_click(
    *,
    user_agent: str | None,
    url: str,
    clicked_at: datetime,
    sent_at: datetime | None,
    earlier_clicks: Iterable[tuple[datetime, str]],
    bot_click_seconds: int,
) -> bool:
    """Whether a click is a bot click (see the module docstring for the rule).

    ``sent_at`` is when the message went out (None when unknown); ``earlier_clicks`` are
    the ``(time, url)`` of the message's clicks recorded before this one. All times must
    be comparable (all aware, or all naive UTC).
    """
    if is_scanner_user_agent(user_agent):
        return True
    if sent_at is not None and 0 <= (clicked_at - sent_at).total_seconds() <= bot_click_seconds:
        return True
    return any(
        other != url and 0 <= (clicked_at - at).total_seconds() <= BURST_SECONDS
        for at, other in earlier_clicks
    )
