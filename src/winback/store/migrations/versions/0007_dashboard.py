"""dashboard: the figures kept at score time, and an index of events by message

Revision ID: 0007_dashboard
Revises: 0006_journey_status
Create Date: 2026-12-07 04:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_dashboard"
down_revision = "0006_journey_status"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "stage_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("change", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "stage", name=op.f("pk_stage_days")),
    )
    op.create_table(
        "stage_flow_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=False),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "from_stage", "to_stage", name=op.f("pk_stage_flow_days")),
    )
    op.create_table(
        "delivery_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "type", "channel", name=op.f("pk_delivery_days")),
    )
    op.create_table(
        "figure_marks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("mark", Id, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_figure_marks")),
    )
    op.create_table(
        "figure_snapshots",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_figure_snapshots")),
    )
    op.create_index(
        "ix_events_outbox",
        "events",
        ["outbox_id"],
        sqlite_where=sa.text("outbox_id IS NOT NULL"),
        postgresql_where=sa.text("outbox_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_events_outbox", table_name="events")
    for table in (
        "figure_snapshots",
        "figure_marks",
        "delivery_days",
        "stage_flow_days",
        "stage_days",
    ):
        op.drop_table(table)
