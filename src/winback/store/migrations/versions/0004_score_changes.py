"""score_changes: the contacts whose record changed since the last score, kept by triggers

An incremental ``winback score`` rewrites only the contacts it must. New events are found
by id; a contact whose record changed without any event (a refusal, a journey that let it
go, a paid subscription, a new creation date, an erasure, a new contact) used to be found
by one pass over every contact joined to its stored scores, the largest step of the
rescore. Triggers on ``contacts`` now note such contacts in ``score_changes`` as they
change, whoever writes them (an import, the tick, the web app, plain SQL), and the next
score reads and empties that table.

The columns watched are those the stage rules read from the contact's record; a new rule
that reads another column must recreate the update trigger. On SQLite, a migration that
rebuilds ``contacts`` (``batch_alter_table`` in its move-and-copy mode) drops the
triggers: it must create them again (``winback score`` falls back to a full score, and
says why, while they are missing).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 09:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WATCHED = (
    "created_at",
    "email_status",
    "sms_status",
    "subscription_active",
    "lost_by_journey_at",
    "erased_at",
)

SQLITE = (
    """CREATE TRIGGER score_changes_insert AFTER INSERT ON contacts
    BEGIN INSERT OR IGNORE INTO score_changes (contact_id) VALUES (NEW.id); END""",
    f"""CREATE TRIGGER score_changes_update AFTER UPDATE OF {", ".join(WATCHED)} ON contacts
    WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in WATCHED)}
    BEGIN INSERT OR IGNORE INTO score_changes (contact_id) VALUES (NEW.id); END""",
)
# PostgreSQL: statement-level triggers over the transition tables, so a bulk import
# notes its contacts in one INSERT ... SELECT instead of one call per row.
POSTGRESQL = (
    """CREATE FUNCTION score_changes_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO score_changes (contact_id) SELECT id FROM inserted
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    f"""CREATE FUNCTION score_changes_updated() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO score_changes (contact_id)
        SELECT n.id FROM updated_new AS n JOIN updated_old AS o ON o.id = n.id
        WHERE {" OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in WATCHED)}
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER score_changes_insert AFTER INSERT ON contacts
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION score_changes_inserted()""",
    """CREATE TRIGGER score_changes_update AFTER UPDATE ON contacts
    REFERENCING OLD TABLE AS updated_old NEW TABLE AS updated_new
    FOR EACH STATEMENT EXECUTE FUNCTION score_changes_updated()""",
)


def upgrade() -> None:
    op.create_table(
        "score_changes",
        sa.Column(
            "contact_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_score_changes")),
    )
    for statement in SQLITE if op.get_context().dialect.name == "sqlite" else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_context().dialect.name == "sqlite"
    for trigger in ("score_changes_insert", "score_changes_update"):
        op.execute(f"DROP TRIGGER {trigger}" + ("" if sqlite else " ON contacts"))
    if not sqlite:
        op.execute("DROP FUNCTION score_changes_inserted()")
        op.execute("DROP FUNCTION score_changes_updated()")
    op.drop_table("score_changes")
