"""contacts: the source's modification time, the consent evidence date, the source ids

An ESP or shop export says when each record last changed (Mailchimp ``LAST_CHANGED``,
Brevo ``MODIFIED_TIME``...): the import keeps it in ``modified_at`` so the newest record
wins a merge whatever the order of the files. ``email_consent_at`` keeps the date of the
opt-in (``CONFIRM_TIME``, else ``OPTIN_TIME``) as the evidence of consent, and
``source_ids`` the ids the services gave the person (``mailchimp:LEID``...), all of them
when several records merge.

Plain ADD COLUMN on both databases: SQLite keeps the table (and its triggers) as it is.

Revision ID: 0005_kinds
Revises: 0005_clisafe
Create Date: 2026-12-07 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_kinds"
down_revision = "0005_clisafe"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("contacts", sa.Column("modified_at", sa.DateTime(), nullable=True))
    op.add_column("contacts", sa.Column("email_consent_at", sa.DateTime(), nullable=True))
    op.add_column("contacts", sa.Column("source_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("source_ids")
        batch.drop_column("email_consent_at")
        batch.drop_column("modified_at")
