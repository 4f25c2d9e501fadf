"""segments: the expression of a segment, in the segment language

A segment is now saved as one expression (``stage in (dormant, at_risk) and p_alive <
0.3``), kept as text so that relative dates (``180 days ago``) are resolved each time it
is counted. Segments saved before keep their JSON ``filters`` and still load; a new one
has no filters, so the column becomes nullable.

Downgrading drops the expressions: the segments that only have one are deleted.

Revision ID: 0005_segments
Revises: 0005_users
Create Date: 2026-12-07 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_segments"
down_revision = "0005_users"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("segments") as batch:
        batch.add_column(sa.Column("expression", sa.Text(), nullable=True))
        batch.alter_column("filters", existing_type=sa.JSON(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM segments WHERE filters IS NULL")
    with op.batch_alter_table("segments") as batch:
        batch.alter_column("filters", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("expression")
