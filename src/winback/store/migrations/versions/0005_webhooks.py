"""webhook_tokens: Mailgun's signature tokens seen within the freshness window

Mailgun signs only a timestamp and a token, not the event: a captured signature object
sent again with another ``event-data`` verifies. Each token is now taken with one body
(the same body again is Mailgun's retry); the table keeps them until the freshness window
(``web.webhook_max_age``) refuses them anyway, in the store so that a restart or a second
server process knows them too.

Revision ID: 0005_webhooks
Revises: 0005_refusals
Create Date: 2026-12-07 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_webhooks"
down_revision = "0005_refusals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_tokens",
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "token", name=op.f("pk_webhook_tokens")),
    )
    op.create_index("ix_webhook_tokens_expires_at", "webhook_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_tokens_expires_at", table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
