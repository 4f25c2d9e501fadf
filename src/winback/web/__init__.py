"""The web part: the tracking and preference server (``winback serve``).

Public face:

- :func:`create_app` builds the ASGI app of a workspace (open pixel, click links,
  one-click unsubscribe, preference centre, survey, ESP webhooks);
- :func:`winback.web.serve.serve` runs it with uvicorn until SIGTERM or Ctrl-C, writing
  every queued hit before it returns;
- :func:`is_bot_click` and :func:`is_scanner_user_agent` are the bot-click rule.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from winback.web.app import create_app
    from winback.web.bots import is_bot_click, is_scanner_user_agent

__all__ = ["create_app", "is_bot_click", "is_scanner_user_agent"]
# Loaded on first use: importing a part of the package (the webhooks' parsers, which the
# events importer uses) must not load FastAPI, uvicorn and the whole app.
_HOMES = {
    "create_app": "winback.web.app",
    "is_bot_click": "winback.web.bots",
    "is_scanner_user_agent": "winback.web.bots",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'winback.web' has no attribute {name!r}")
