"""erased_hits and hit_journal: anonymous counts of hits on erased contacts' links, and
how far each segment of the tracking server's hit journal is recorded

A hit on the old link of an erased person is kept as a count per day, journey, step,
channel and kind (no contact, address or user agent). ``winback serve`` acknowledges a
hit once it is in its journal (fsynced), and records it from there; ``hit_journal`` keeps,
in the same transaction as the hits, the last one recorded from each segment, so a
replay after a crash records nothing twice.

Revision ID: 0005_server
Revises: 0005_dispatch
Create Date: 2026-12-07 01:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_server"
down_revision = "0005_dispatch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erased_hits",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("journey", sa.String(length=200), nullable=False),
        sa.Column("step_id", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "journey", "step_id", "channel", "type", name=op.f("pk_erased_hits")
        ),
    )
    op.create_table(
        "hit_journal",
        sa.Column("segment", sa.String(length=100), nullable=False),
        sa.Column("recorded_through", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("segment", name=op.f("pk_hit_journal")),
    )


def downgrade() -> None:
    op.drop_table("hit_journal")
    op.drop_table("erased_hits")
