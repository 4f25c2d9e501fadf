"""events: the discount code a purchase used

Revision ID: 0005_clisafe
Revises: 0005_segments
Create Date: 2026-12-07 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_clisafe"
down_revision = "0005_segments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("discount_code", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("discount_code")
