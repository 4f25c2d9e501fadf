"""contact_scores: the day the clock reaches the next threshold, indexed

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 06:15:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_scores") as batch:
        batch.add_column(sa.Column("next_threshold_on", sa.Date(), nullable=True))
        batch.create_index("ix_contact_scores_next_threshold", ["next_threshold_on"])


def downgrade() -> None:
    with op.batch_alter_table("contact_scores") as batch:
        batch.drop_index("ix_contact_scores_next_threshold")
        batch.drop_column("next_threshold_on")
