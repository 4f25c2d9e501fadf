"""The SQL of ``webhook_tokens``: a webhook signature's token taken once (the replay
cache of :mod:`winback.web.webhooks.mailgun`), with the digest of the body it came with:
the same body again is the provider's retry, another body a replay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from winback.clock import to_db
from winback.store.schema import webhook_tokens


def take_token(
    connection: Connection,
    provider: str,
    token: str,
    digest: str,
    *,
    expires_at: datetime,
    now: datetime,
) -> bool:
    """Note ``provider``'s ``token``, used with a body of this ``digest``, until
    ``expires_at``; False when the token was used already with another body (and has not
    expired). Expired tokens are pruned on the way."""
    connection.execute(delete(webhook_tokens).where(webhook_tokens.c.expires_at < to_db(now)))
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(webhook_tokens).on_conflict_do_nothing(index_elements=["provider", "token"])
    row = {"provider": provider, "token": token, "digest": digest, "expires_at": to_db(expires_at)}
    if connection.execute(statement, row).rowcount == 1:
        return True
    taken = select(webhook_tokens.c.digest).where(
        webhook_tokens.c.provider == provider, webhook_tokens.c.token == token
    )
    return connection.execute(taken).scalar_one_or_none() == digest
