"""journeys: a status, so a running journey can be paused, resumed or stopped

Revision ID: 0006_journey_status
Revises: 0005_server
Create Date: 2026-12-07 02:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_journey_status"
down_revision = "0005_server"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="active")
        )


def downgrade() -> None:
    with op.batch_alter_table("journeys") as batch:
        batch.drop_column("status")
