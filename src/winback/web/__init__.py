"""The web part: the tracking and preference server (``winback serve``).

Public face:

- :func:`create_app` builds the ASGI app of a workspace (open pixel, click links,
  one-click unsubscribe, preference centre, survey, ESP webhooks);
- :func:`serve` runs it with uvicorn until SIGTERM or Ctrl-C, writing every queued hit
  before it returns;
- :func:`is_bot_click` and :func:`is_scanner_user_agent` are the bot-click rule.
"""

from winback.web.app import create_app
from winback.web.bots import is_bot_click, is_scanner_user_agent
from winback.web.serve import serve

__all__ = ["create_app", "is_bot_click", "is_scanner_user_agent", "serve"]
