"""Who may open the dashboard, and how a browser stays logged in.

- Users are an email and an Argon2id hash of their password (argon2-cffi, the OWASP
  recommendation); ``winback user add`` creates or updates one.
- A session is a signed cookie: ``email|expiry`` with an HMAC under a key derived from the
  workspace secret. Nothing is kept on the server, so a restart logs no one out; changing
  the secret logs everyone out. ``HttpOnly`` and ``SameSite=Lax`` always, ``Secure`` when
  ``public_url`` is https.
- Failed logins are slowed: after :data:`FREE_FAILURES` failures for one email (or one
  client address) each further try must wait twice as long as the last, up to
  :data:`MAX_WAIT`, whatever the password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, insert, select, update

from winback.clock import to_db
from winback.errors import WinbackError
from winback.store.schema import users
from winback.workspace import Workspace

COOKIE = "winback_session"
SESSION_LENGTH = timedelta(hours=12)
FREE_FAILURES = 3
MAX_WAIT = 300.0
MIN_PASSWORD = 10
_LABEL = b"winback dashboard session v1"
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both answers take as long.
_DUMMY = _hasher.hash("winback: no such user")


class UserError(WinbackError):
    """A user that cannot be created as asked (an empty email, a short password)."""

    exit_code = 2


def add_user(workspace: Workspace, email: str, password: str, now: datetime) -> bool:
    """Create the dashboard user ``email`` or change their password; True when new."""
    email = email.strip().lower()
    if "@" not in email:
        raise UserError(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password must have at least {MIN_PASSWORD} characters")
    hashed = _hasher.hash(password)
    with workspace.engine.begin() as connection:
        found = connection.execute(select(users.c.id).where(users.c.email == email)).first()
        if found is None:
            connection.execute(
                insert(users),
                {"email": email, "password_hash": hashed, "created_at": to_db(now),
                 "updated_at": to_db(now)},
            )  # fmt: skip
            return True
        connection.execute(
            update(users)
            .where(users.c.id == found.id)
            .values(password_hash=hashed, updated_at=to_db(now))
        )
        return False


def check_password(connection: Connection, email: str, password: str) -> bool:
    """Whether ``password`` is the password of the user ``email``."""
    stored = connection.execute(
        select(users.c.password_hash).where(users.c.email == email.strip().lower())
    ).scalar()
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def _sign(secret: bytes, payload: bytes) -> str:
    digest = hmac.new(_key(secret), payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def session_cookie(secret: bytes, email: str, now: datetime) -> str:
    """The cookie value that keeps ``email`` logged in for :data:`SESSION_LENGTH`."""
    expires = int((now + SESSION_LENGTH).timestamp())
    payload = f"{email.strip().lower()}|{expires}".encode()
    encoded = base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")
    return f"{encoded}.{_sign(secret, payload)}"


def session_user(secret: bytes, cookie: str | None, now: datetime) -> str | None:
    """The email a session cookie vouches for, or None (absent, forged or expired)."""
    if not cookie or cookie.count(".") != 1:
        return None
    encoded, signature = cookie.split(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return None
    if not hmac.compare_digest(_sign(secret, payload), signature):
        return None
    email, _, expires = payload.decode("utf-8", "replace").rpartition("|")
    if not expires.isdigit() or int(expires) < now.timestamp():
        return None
    return email


@dataclass
class LoginThrottle:
    """Failed logins per key (an email, a client address): how long the next try must
    wait. In memory: a server restart forgets, which costs an attacker a restart."""

    failures: dict[str, tuple[int, datetime]] = field(default_factory=dict)

    def wait(self, keys: list[str], now: datetime) -> float:
        """Seconds before any of ``keys`` may try again (0: now)."""
        longest = 0.0
        for key in keys:
            count, last = self.failures.get(key, (0, now))
            if count >= FREE_FAILURES:
                delay = min(MAX_WAIT, 2.0 ** (count - FREE_FAILURES + 1))
                longest = max(longest, delay - (now - last).total_seconds())
        return max(0.0, longest)

    def failed(self, keys: list[str], now: datetime) -> None:
        for key in keys:
            count, _ = self.failures.get(key, (0, now))
            self.failures[key] = (count + 1, now)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)
