"""CSRF protection of the forms, without cookies or server state.

A form's hidden ``csrf`` field is an HMAC of the link token the page was opened with,
under a key of its own derived from the workspace secret. Only someone who loaded the
page (so holds the link token) can post the form; another site cannot make the value,
and the token of one person's link is useless on another person's page. The link token
already is the person's capability, so tying the CSRF token to it adds no state to keep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

_LABEL = b"winback csrf v1"


def csrf_token(secret: bytes, link_token: str) -> str:
    """The CSRF value of the forms of the page opened with ``link_token``."""
    key = hmac.new(secret, _LABEL, hashlib.sha256).digest()
    digest = hmac.new(key, link_token.encode("utf-8"), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def csrf_ok(secret: bytes, link_token: str, given: str | None) -> bool:
    """Whether a posted ``csrf`` field belongs to the page of ``link_token``. A value
    with a non-ASCII character is wrong (and compare_digest refuses to compare it)."""
    return (
        given is not None
        and given.isascii()
        and hmac.compare_digest(csrf_token(secret, link_token), given)
    )
