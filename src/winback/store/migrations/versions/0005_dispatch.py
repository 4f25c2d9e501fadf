"""enrollments: the channel the current step went out on (NULL: passed over)

Revision ID: 0005_dispatch
Revises: 0005_webhooks
Create Date: 2026-12-07 01:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_dispatch"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("step_channel", sa.String(8), nullable=True))
    # The enrollments already under way: the channel of their current step's message
    # (its outbox key is "enrollment:step"). The holdout, never sent anything, keeps
    # NULL, and so takes no branch at its next step.
    enrollments = sa.table(
        "enrollments",
        sa.column("id", sa.BigInteger),
        sa.column("step_id", sa.String),
        sa.column("step_channel", sa.String),
    )
    outbox = sa.table(
        "outbox", sa.column("idempotency_key", sa.String), sa.column("channel", sa.String)
    )
    key = sa.cast(enrollments.c.id, sa.String) + ":" + enrollments.c.step_id
    op.execute(
        enrollments.update()
        .where(enrollments.c.step_id.is_not(None))
        .values(
            step_channel=sa.select(outbox.c.channel)
            .where(outbox.c.idempotency_key == key)
            .scalar_subquery()
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_column("step_channel")
