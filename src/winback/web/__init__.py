"""The web part: the tracking and preference server (``winback serve``).

Public face:

- :func:`create_app` builds the ASGI app of a workspace (open pixel, click links,
  one-click unsubscribe, preference centre, survey, ESP webhooks);
- :func:`winback.web.serve.serve` runs it with uvicorn until SIGTERM or Ctrl-C, writing
  every queued hit before it returns;
- :func:`is_bot_click` and :func:`is_scanner_user_agent` are the bot-click rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from winback.lazy import lazy_face

if TYPE_CHECKING:
    from winback.web.app import create_app
    from winback.web.bots import is_bot_click, is_scanner_user_agent

__all__ = ["create_app", "is_bot_click", "is_scanner_user_agent"]
# Loaded on first use: importing a part of the package (the webhooks' parsers, which the
# events importer uses) must not load FastAPI, uvicorn and the whole app.
_HOMES = {
    "create_app": "app",
    "is_bot_click": "bots",
    "is_scanner_user_agent": "bots",
}

__getattr__ = lazy_face(__name__, _HOMES)
